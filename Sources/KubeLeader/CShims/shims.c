#define _GNU_SOURCE
#include "cshims.h"
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>

extern char **environ;

char *const *cshims_environ(void) { return environ; }

int cshims_WIFEXITED(int status) { return WIFEXITED(status); }
int cshims_WEXITSTATUS(int status) { return WEXITSTATUS(status); }
int cshims_WIFSIGNALED(int status) { return WIFSIGNALED(status); }
int cshims_WTERMSIG(int status) { return WTERMSIG(status); }

int cshims_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }

int cshims_signalfd(const sigset_t *mask) { return signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK); }

int cshims_signalfd_read(int fd, int32_t *pid) {
    struct signalfd_siginfo info;
    ssize_t n;
    do { n = read(fd, &info, sizeof info); } while (n < 0 && errno == EINTR);
    if (n < 0) { return (errno == EAGAIN) ? 0 : -1; }
    if (n != sizeof info) { errno = EIO; return -1; }
    if (pid) { *pid = (int32_t)info.ssi_pid; }
    return (int)info.ssi_signo;
}

int cshims_pipe_cloexec_nonblock(int fds[2]) { return pipe2(fds, O_CLOEXEC | O_NONBLOCK); }
