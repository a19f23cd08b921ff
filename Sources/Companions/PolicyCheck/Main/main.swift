import KLSupport
import PolicyCheckKit

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// policy-check: wiring only; the commands live in PolicyCheckKit.
exit(PolicyCheckCLI.run(ProcessEnvironment.arguments(), environment: ProcessEnvironment.current(), io: SystemIO()))
