#define _GNU_SOURCE
#include "cshims_supervise.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int cshims_spawn_supervised(pid_t *pid, const char *const files[], char *const argv[], char *const envp[],
                            int *exec_report) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) { return errno; }
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
        /* The PATH search of execvp(3), here in the child: a stat of a
           directory on a hung mount blocks this process, never the parent. */
        int report[2] = {ENOENT, 0};
        int denied = -1;
        for (int i = 0; files[i] != NULL; i++) {
            execve(files[i], argv, envp);
            report[0] = errno;
            report[1] = i;
            if (errno == EACCES) { if (denied < 0) { denied = i; } continue; }
            if (errno == ENOENT || errno == ENOTDIR || errno == ESTALE || errno == ENODEV || errno == ETIMEDOUT) { continue; }
            break;
        }
        if (denied >= 0 && (report[0] == ENOENT || report[0] == ENOTDIR || report[0] == ESTALE
                            || report[0] == ENODEV || report[0] == ETIMEDOUT)) {
            report[0] = EACCES;
            report[1] = denied;
        }
        ssize_t ignored = write(fds[1], report, sizeof report);
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
    *pid = child;
    *exec_report = fds[0];
    return 0;
}

int cshims_exec_report_read(int fd, int *error, int *index) {
    int report[2] = {0, 0};
    ssize_t n;
    do { n = read(fd, report, sizeof report); } while (n < 0 && errno == EINTR);
    if (n < 0) { return errno == EAGAIN ? 0 : -1; }
    if (n == 0) { return 1; }
    *error = report[0];
    *index = report[1];
    return 2;
}

int cshims_sigrtmin(void) { return SIGRTMIN; }
int cshims_sigrtmax(void) { return SIGRTMAX; }
