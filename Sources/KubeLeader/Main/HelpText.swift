import KLCore
import KLSystem
import KLTransport

/// `kube-leader --help`: usage, every option with its env var and default,
/// exit codes and signals, so the help answers the questions people ask.
enum HelpText {
    /// `kube-leader --version`: version and commit, then Swift, libc and the
    /// OpenSSL linked in (BuildInfo.versionText).
    static var versionLine: String {
        BuildInfo.versionText(program: "kube-leader", version: kubeLeaderVersion, openSSL: OpenSSLInfo.versionText)
    }

    static var text: String {
        """
        kube-leader \(kubeLeaderVersion): run a command on exactly one replica.

        Usage:
          kube-leader [OPTIONS] LOCK_NAME [--] COMMAND [ARG...]

        Every replica starts kube-leader; the one that acquires the lock LOCK_NAME
        (a ConfigMap, or a Lease with --lock-kind lease) runs COMMAND as its child,
        renews the lock while it runs, forwards signals to it, reaps zombies, and
        releases the lock when it exits. The others wait, watching the lock.
        Outside a cluster (no KUBERNETES_SERVICE_HOST, no --api-server) it just runs
        COMMAND. Options end at LOCK_NAME; use -- before COMMAND for clarity.

        Options (flag, then env var, then default):
        \(LeaderConfig.parser.helpText())

        Durations: 500ms, 15s, 2m, 1m30s. Rules: lease-duration - renew-deadline -
        kill-grace >= max(1s, 1% of lease-duration) (this margin tolerates clocks
        of two replicas running up to 1% apart at leases >= 100s), and
        renew-deadline > 1.2 × retry-period.

        Exit codes:
          N        the child's exit code; 128+N when the child died of signal N
          2        bad usage or configuration, or the API refused us (401, 403,
                   untrusted certificate); nothing was started
          3        leadership lost, or no renew within renew-deadline: the child
                   was stopped (SIGTERM, then SIGKILL after kill-grace); with
                   --on-loss standby kube-leader stands by again instead, once
                   the child's whole group is gone
          126      COMMAND is not executable
          127      COMMAND not found
          128+N    signal N arrived before we became leader (nothing was started)
          1        any other failure of kube-leader itself (the log says what)

        Signals: every signal tini forwards goes to the child's process group
        (all but SIGCHLD, SIGKILL, SIGSTOP, SIGPIPE, SIGTTIN, SIGTTOU and the
        synchronous SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGSYS;
        real-time signals included); none of them ends kube-leader. Before the
        child starts, SIGTERM, SIGINT, SIGHUP and SIGQUIT end kube-leader (a lock
        taken meanwhile is released first); the others are dropped. When the child exits, what it left running is killed
        before the lock is released.

        The child's environment adds KUBE_LEADER_IDENTITY, KUBE_LEADER_LOCK
        (namespace/name), KUBE_LEADER_LOCK_KIND, KUBE_LEADER_TRANSITIONS and
        KUBE_LEADER_FENCING_TOKEN: the resourceVersion of the write that acquired
        the lock. It grows with every acquisition (compare as integers, only between
        tokens of one lock kind); send it with your writes and let the resource
        refuse lower ones to fence out a leader that was frozen past its lease.

        Hand-over: name a replica in the lock (Lease spec.preferredHolder, or the
        annotation kube-leader.io/preferred-holder on the lock object) and the
        leader stops its child as on a loss, releases the lock keeping the name,
        and stands by again (whatever --on-loss says); the named replica leads
        next, the others leave it a lease. With --coordinated the cluster's
        controller names the better candidate this way.

        --status-addr serves GET /healthz (500 when leading without a successful
        renew for renew-deadline), /leader (JSON) and /metrics (Prometheus, with
        client-go's leader_election_master_status and leader_election_slowpath_total).

        RBAC: get, list, watch, create, update on configmaps (or leases in the
        group coordination.k8s.io) in the lock's namespace (without list it reads
        with GET and warns); get on pods for a lock left by the original
        kube-leader; with --leader-label also list and patch on pods, with
        --events create on events; with --coordinated also get, create, update,
        delete on leasecandidates (coordination.k8s.io). See deploy/ in the
        repository, docs/surfaces.md and docs/coordinated.md.

        Example:
          ENTRYPOINT ["/kube-leader", "my-lock", "--"]
          CMD ["/app/worker", "--queue", "jobs"]

        """
    }
}
