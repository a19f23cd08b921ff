/// PolicyCheck's own logic.
public enum PolicyCheckModule {}
