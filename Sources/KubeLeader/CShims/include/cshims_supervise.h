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
///
/// `files` (NULL-terminated) are the paths to try in order, as execvp(3)
/// tries the PATH entries; the child does the trying, so the caller never
/// touches the file system (a hung NFS or FUSE mount blocks the child only).
///
/// Returns as soon as the child is forked, without waiting for its exec:
/// `*exec_report` is the non-blocking read end of a CLOEXEC pipe that turns
/// readable once the exec succeeded (EOF) or failed (errno and index of the
/// file; the child then _exits 127). Read it with cshims_exec_report_read.
/// Returns 0, or an errno value (pipe or fork failed).
///
/// - Important: call it from a thread that lives as long as the child should
///   (kube-leader's main thread).
int cshims_spawn_supervised(pid_t *pid, const char *const files[], char *const argv[], char *const envp[],
                            int *exec_report);

/// Reads the exec report without blocking: 0 nothing yet, 1 exec succeeded
/// (EOF), 2 exec failed (*error, *index set), -1 error (errno).
int cshims_exec_report_read(int fd, int *error, int *index);

/// The C library's real-time signal range (SIGRTMIN, SIGRTMAX: glibc keeps
/// 32 and 33 for itself, musl 32 to 34).
int cshims_sigrtmin(void);
int cshims_sigrtmax(void);

#endif
