import KLSystem
import NodeLifecycleKit


exit(NodeLifecycleCommand.main(arguments: ProcessEnvironment.arguments(), environment: ProcessEnvironment.current()))
