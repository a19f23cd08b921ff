/// PagerTester's own logic.
public enum PagerTesterModule {}
