import KLSystem
import PolicyCheckKit


// policy-check: wiring only; the commands live in PolicyCheckKit.
exit(PolicyCheckCLI.run(ProcessEnvironment.arguments(), environment: ProcessEnvironment.current(), io: SystemIO()))
