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

#endif
