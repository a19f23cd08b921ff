// Everything that imports Support also sees the pure core (JSON, durations,
// times, the option parser), so binaries need one import.
@_exported import KLCore
