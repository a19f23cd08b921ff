// Small C accessors for what Swift cannot import from Glibc: the environ
// global (not concurrency-safe in Swift 6), the wait-status macros, variadic
// prctl, signalfd, pipe2.
#ifndef CSHIMS_H
#define CSHIMS_H

#include <sys/types.h>
#include <signal.h>
#include <stdint.h>

/// The process environment as a NULL-terminated array ("KEY=VALUE").
char *const *cshims_environ(void);

/// The WIFEXITED family of macros.
int cshims_WIFEXITED(int status);
int cshims_WEXITSTATUS(int status);
int cshims_WIFSIGNALED(int status);
int cshims_WTERMSIG(int status);

/// prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned grandchildren become ours to reap.
int cshims_set_child_subreaper(void);

/// signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK).
int cshims_signalfd(const sigset_t *mask);

/// Reads one signalfd_siginfo and returns the signal number (0 when nothing
/// was there, -1 with errno set on error). *pid receives ssi_pid.
int cshims_signalfd_read(int fd, int32_t *pid);

/// pipe2(fds, O_CLOEXEC | O_NONBLOCK).
int cshims_pipe_cloexec_nonblock(int fds[2]);

/// accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK): the status endpoint's
/// connections never leak into the child.
int cshims_accept_cloexec_nonblock(int fd);

/// pipe2(fds, O_CLOEXEC): blocking ends, for a child's stdio (the parent sets
/// O_NONBLOCK on its own end only; the child must get a blocking descriptor).
int cshims_pipe_cloexec(int fds[2]);

/// Flags of cshims_spawn.
#define CSHIMS_SPAWN_NEW_GROUP 1   /* setpgid(0, 0): the child leads its own process group */
#define CSHIMS_SPAWN_FOREGROUND 2  /* and that group becomes the foreground group of stdin's tty */

/// posix_spawn(path, argv, envp) with a clean child: an empty signal mask
/// (POSIX_SPAWN_SETSIGMASK) and every signal at its default disposition
/// (POSIX_SPAWN_SETSIGDEF with a set that includes glibc's internal signals
/// 32 and 33, which sigfillset leaves out and glibc would otherwise leave
/// ignored). in_fd/out_fd/err_fd are dup2'ed to 0/1/2 when >= 0. Returns 0 or
/// an errno value (glibc >= 2.24 and musl report exec failures here).
int cshims_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                 int in_fd, int out_fd, int err_fd, int flags);

/// pidfd_open(pid, 0) (Linux 5.3): a descriptor that polls readable once the
/// process has exited. -1 with errno (ENOSYS on old kernels).
int cshims_pidfd_open(pid_t pid);

/// waitid(P_PID, pid, WEXITED | WNOHANG | WNOWAIT): 1 when the process has
/// exited (it stays a zombie), 0 when it is still running, -1 with errno.
int cshims_has_exited(pid_t pid);

/// Sets the disposition of a signal: ignored (SIG_IGN) or default (SIG_DFL).
int cshims_set_signal_ignored(int sig, int ignored);

/// execve with the signal mask of the calling thread emptied first (restored
/// when execve fails), so the new program does not inherit our blocked set.
int cshims_execve_clean(const char *path, char *const argv[], char *const envp[]);

/// The source commit of the build: scripts/build-static passes
/// -Xcc -DKL_SOURCE_COMMIT="<git commit>"; other builds say "unknown".
#ifndef KL_SOURCE_COMMIT
#define KL_SOURCE_COMMIT "unknown"
#endif
static inline const char *cshims_source_commit(void) { return KL_SOURCE_COMMIT; }

/// The C library the binary runs on, asked at run time (for a static binary:
/// the one linked into it): "glibc" and gnu_get_libc_version() ("2.36");
/// musl has no version call, so "musl" and "".
#if defined(__GLIBC__)
#include <gnu/libc-version.h>
static inline const char *cshims_libc_name(void) { return "glibc"; }
static inline const char *cshims_libc_version(void) { return gnu_get_libc_version(); }
#else
static inline const char *cshims_libc_name(void) { return "musl"; }
static inline const char *cshims_libc_version(void) { return ""; }
#endif

#endif
