// `Signal` and `TerminationStatus` are pure values in KLCore (the supervision
// phase machine uses them); whoever imports KLProcess sees them as before.
@_exported import KLCore
