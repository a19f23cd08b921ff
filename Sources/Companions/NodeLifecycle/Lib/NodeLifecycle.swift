/// NodeLifecycle's own logic.
public enum NodeLifecycleModule {}
