#define _GNU_SOURCE
#include "cshims.h"
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>
#include <spawn.h>
#include <string.h>
#include <termios.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <sys/socket.h>

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

int cshims_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int cshims_accept_cloexec_nonblock(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK); }

int cshims_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                 int in_fd, int out_fd, int err_fd, int flags) {
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t actions;
    int rc = posix_spawnattr_init(&attr);
    if (rc != 0) { return rc; }
    rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) { posix_spawnattr_destroy(&attr); return rc; }

    sigset_t empty, all;
    sigemptyset(&empty);
    /* Not sigfillset: glibc's leaves out its internal signals (32, 33), and
       its spawn child then sets them to SIG_IGN (sysdeps/unix/sysv/linux/spawni.c). */
    memset(&all, 0xff, sizeof all);
    short spawn_flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    rc = posix_spawnattr_setsigmask(&attr, &empty);
    if (rc == 0) { rc = posix_spawnattr_setsigdefault(&attr, &all); }
    int foreground_fd = -1;
    if (rc == 0 && (flags & CSHIMS_SPAWN_NEW_GROUP)) {
        spawn_flags |= POSIX_SPAWN_SETPGROUP;
        rc = posix_spawnattr_setpgroup(&attr, 0);
        if (rc == 0 && (flags & CSHIMS_SPAWN_FOREGROUND) && isatty(STDIN_FILENO)) {
            foreground_fd = STDIN_FILENO;
#ifdef POSIX_SPAWN_TCSETPGROUP
            spawn_flags |= POSIX_SPAWN_TCSETPGROUP;
            rc = posix_spawnattr_tcsetpgrp_np(&attr, foreground_fd);
            foreground_fd = -1;
#endif
        }
    }
    if (rc == 0) { rc = posix_spawnattr_setflags(&attr, spawn_flags); }
    if (rc == 0 && in_fd >= 0) { rc = posix_spawn_file_actions_adddup2(&actions, in_fd, 0); }
    if (rc == 0 && out_fd >= 0) { rc = posix_spawn_file_actions_adddup2(&actions, out_fd, 1); }
    if (rc == 0 && err_fd >= 0) { rc = posix_spawn_file_actions_adddup2(&actions, err_fd, 2); }
    if (rc == 0) { rc = posix_spawn(pid, path, &actions, &attr, argv, envp); }
    if (rc == 0 && foreground_fd >= 0) {
        /* No POSIX_SPAWN_TCSETPGROUP (musl, glibc < 2.35): hand over the
           terminal from the parent; the child may briefly run in the background. */
        sigset_t ttou, old;
        sigemptyset(&ttou);
        sigaddset(&ttou, SIGTTOU);
        pthread_sigmask(SIG_BLOCK, &ttou, &old);
        (void)tcsetpgrp(foreground_fd, *pid);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    return rc;
}

int cshims_pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int cshims_set_signal_ignored(int sig, int ignored) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ignored ? SIG_IGN : SIG_DFL;
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, NULL);
}

int cshims_execve_clean(const char *path, char *const argv[], char *const envp[]) {
    sigset_t empty, old;
    sigemptyset(&empty);
    pthread_sigmask(SIG_SETMASK, &empty, &old);
    execve(path, argv, envp);
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return -1;
}

int cshims_has_exited(pid_t pid) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int rc;
    do { rc = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT); } while (rc < 0 && errno == EINTR);
    if (rc < 0) { return -1; }
    return info.si_pid != 0 ? 1 : 0;
}
