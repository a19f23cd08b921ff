import KLSupport
import NodeLifecycleKit

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

exit(NodeLifecycleCommand.main(arguments: ProcessEnvironment.arguments(), environment: ProcessEnvironment.current()))
