// C pieces of the OpenSSL glue that cannot be written in Swift (BIO callbacks).
#include "copenssl.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

static int nosigpipe_write(BIO *b, const char *buf, int len) {
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n;
    do { n = send(fd, buf, (size_t)len, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
    return (int)n;
}

static int nosigpipe_read(BIO *b, char *buf, int len) {
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n;
    do { n = recv(fd, buf, (size_t)len, 0); } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
    return (int)n;
}

static int nosigpipe_puts(BIO *b, const char *str) {
    return nosigpipe_write(b, str, (int)strlen(str));
}

static long nosigpipe_ctrl(BIO *b, int cmd, long num, void *ptr) {
    (void)b; (void)num; (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_DUP: return 1;
    default: return 0;
    }
}

static int nosigpipe_create(BIO *b) {
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *nosigpipe_shared;

static void copenssl_nosigpipe_init(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "kl-socket");
    if (!m) return;
    BIO_meth_set_write(m, nosigpipe_write);
    BIO_meth_set_read(m, nosigpipe_read);
    BIO_meth_set_puts(m, nosigpipe_puts);
    BIO_meth_set_ctrl(m, nosigpipe_ctrl);
    BIO_meth_set_create(m, nosigpipe_create);
    nosigpipe_shared = m;
}

BIO *copenssl_nosigpipe_socket_bio(int fd) {
    static CRYPTO_ONCE once = CRYPTO_ONCE_STATIC_INIT;
    CRYPTO_THREAD_run_once(&once, copenssl_nosigpipe_init);
    if (!nosigpipe_shared) return NULL;
    BIO *b = BIO_new(nosigpipe_shared);
    if (!b) return NULL;
    BIO_set_data(b, (void *)(intptr_t)fd);
    return b;
}
