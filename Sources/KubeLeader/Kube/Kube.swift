/// TLS, HTTP/1.1 and the Kubernetes API client: the only network code.
public enum KubeModule {}
