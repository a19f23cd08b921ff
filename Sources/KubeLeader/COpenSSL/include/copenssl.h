// Module map target for the system OpenSSL (Debian's libssl-dev, linked
// statically into release binaries). Macros Swift cannot import are wrapped
// as static inline functions here.
#ifndef COPENSSL_H
#define COPENSSL_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/rand.h>

/// SSL_set_tlsext_host_name is a macro: sets SNI on a client connection.
static inline long copenssl_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return SSL_set_tlsext_host_name(ssl, name);
}

/// SSL_CTX_set_min_proto_version is a macro.
static inline long copenssl_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return SSL_CTX_set_min_proto_version(ctx, version);
}

/// Stops OpenSSL looking for openssl.cnf (there is none in an empty root),
/// and registering OPENSSL_cleanup with atexit: run by exit() while another
/// thread is inside SSL_read, it frees what that thread uses (a use after
/// free; kube-leader also ends with _exit).
static inline int copenssl_init(void) {
    return OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ATEXIT, NULL);
}

static inline int copenssl_TLS1_2_VERSION(void) { return TLS1_2_VERSION; }

static inline long copenssl_BIO_get_mem_data(BIO *bio, char **pp) {
    return BIO_get_mem_data(bio, pp);
}

/// A socket BIO for `fd` that writes with send(MSG_NOSIGNAL), so writing to
/// a peer that has gone away returns EPIPE instead of raising SIGPIPE (the
/// stock socket BIO uses write(2)). Non-blocking sockets report EAGAIN as a
/// retry, which SSL_get_error turns into SSL_ERROR_WANT_READ/WRITE. The BIO
/// does not own `fd`. NULL on allocation failure.
BIO *copenssl_nosigpipe_socket_bio(int fd);

/// SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF): a peer closing TCP
/// without close_notify reads as end of stream (SSL_ERROR_ZERO_RETURN); HTTP
/// framing (Content-Length, chunked) then decides whether that truncated a body.
static inline void copenssl_SSL_CTX_ignore_unexpected_eof(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
}

/// SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER) is a macro.
static inline void copenssl_SSL_CTX_allow_moving_write_buffer(SSL_CTX *ctx) {
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

/// The OpenSSL linked in, as the library itself reports it (libcrypto's
/// OpenSSL_version, not the header's OPENSSL_VERSION_TEXT): "OpenSSL 3.0.22
/// 25 Aug 2026". For a static binary this is the copy inside it.
static inline const char *copenssl_version_text(void) { return OpenSSL_version(OPENSSL_VERSION); }

/// OpenSSL_version_num() of the library linked in: 0xMNN00PP0L (3.0.22: 0x30000160).
static inline unsigned long copenssl_version_num(void) { return OpenSSL_version_num(); }

#endif
