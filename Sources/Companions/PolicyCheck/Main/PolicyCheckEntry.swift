import KLSystem
import PolicyCheckKit

/// policy-check's entry point: wiring only; the commands live in PolicyCheckKit.
@main
enum PolicyCheckEntry {
    static func main() {
        exit(PolicyCheckCLI.run(ProcessEnvironment.arguments(), environment: ProcessEnvironment.current(), io: SystemIO()))
    }
}
