#ifndef CSHIMS_SUPERVISE_H
#define CSHIMS_SUPERVISE_H
#include <sys/types.h>

/// Starts the supervised child of kube-leader: fork + execve done in C
/// (never fork from Swift), like swift-subprocess's process_shims.c.
///
/// The child: leads its own process group (setpgid), has an empty signal
/// mask and every signal at its default disposition, and gets SIGKILL when
/// the *thread* that called this function dies (PR_SET_PDEATHSIG), so the
/// command can never outlive a kube-leader that was killed with SIGKILL while
/// not PID 1 (as PID 1 the kernel kills the whole PID namespace anyway).
/// exec's errno comes back through a CLOEXEC pipe, so ENOENT/EACCES are known
/// before this returns. Returns 0, or an errno value.
///
/// - Important: call it from a thread that lives as long as the child should
///   (kube-leader's main thread).
int cshims_spawn_supervised(pid_t *pid, const char *path, char *const argv[], char *const envp[]);

/// The C library's real-time signal range (SIGRTMIN, SIGRTMAX: glibc keeps
/// 32 and 33 for itself, musl 32 to 34).
int cshims_sigrtmin(void);
int cshims_sigrtmax(void);

#endif
