import KLSystem
import NodeLifecycleKit

/// node-lifecycle's entry point: wiring only; the command lives in NodeLifecycleKit.
@main
enum NodeLifecycleEntry {
    static func main() {
        exit(NodeLifecycleCommand.main(arguments: ProcessEnvironment.arguments(), environment: ProcessEnvironment.current()))
    }
}
