/// kube-apiserver-fake: test support only.
public enum FakeAPIServerModule {}
