/// Spawning, signals and reaping: the only POSIX-heavy code.
public enum ProcessModule {}
