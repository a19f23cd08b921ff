#define _GNU_SOURCE
#include "cshims_supervise.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int cshims_spawn_supervised(pid_t *pid, const char *path, char *const argv[], char *const envp[]) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) { return errno; }
    pid_t parent = getpid();

    /* Block everything across fork so no handler runs in the child before
       the dispositions are reset. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);

    pid_t child = fork();
    if (child == 0) {
        /* Child: only async-signal-safe calls from here on. */
        close(fds[0]);
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < 65; sig++) {
            if (sig == SIGKILL || sig == SIGSTOP) { continue; }
            (void)sigaction(sig, &dfl, NULL);
        }
        (void)setpgid(0, 0);
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != parent) { _exit(127); }  /* the parent died before prctl */
        sigset_t empty;
        sigemptyset(&empty);
        sigprocmask(SIG_SETMASK, &empty, NULL);
        execve(path, argv, envp);
        int error = errno;
        ssize_t ignored = write(fds[1], &error, sizeof error);
        (void)ignored;
        _exit(127);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(fds[1]);
    if (child < 0) { close(fds[0]); return fork_errno; }
    /* Also set the group from the parent side: no race with a signal sent
       to the group right after we return. */
    (void)setpgid(child, child);

    int exec_errno = 0;
    ssize_t n;
    do { n = read(fds[0], &exec_errno, sizeof exec_errno); } while (n < 0 && errno == EINTR);
    close(fds[0]);
    if (n == (ssize_t)sizeof exec_errno) {
        /* exec failed: the child has _exit'ed; the caller's reaper collects it. */
        return exec_errno ? exec_errno : ENOEXEC;
    }
    *pid = child;
    return 0;
}

int cshims_sigrtmin(void) { return SIGRTMIN; }
int cshims_sigrtmax(void) { return SIGRTMAX; }
