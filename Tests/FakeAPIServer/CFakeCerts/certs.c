#include "cfakecerts.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/bn.h>
#include <openssl/rand.h>
#include <openssl/err.h>

static void fail(char *err, size_t errlen, const char *what) {
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", buf);
}

static EVP_PKEY *new_key(void) {
    return EVP_EC_gen("P-256");
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext) return 0;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

static X509 *new_cert(EVP_PKEY *key, const char *cn, long days) {
    X509 *cert = X509_new();
    if (!cert) return NULL;
    X509_set_version(cert, 2);
    unsigned char serial[16];
    RAND_bytes(serial, sizeof serial);
    serial[0] &= 0x7f; /* positive */
    BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), days * 24L * 3600L);
    X509_set_pubkey(cert, key);
    X509_NAME *name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    return cert;
}

static int write_pem(const char *path, X509 *cert, EVP_PKEY *key) {
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    int ok = cert ? PEM_write_X509(f, cert) : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    if (fclose(f) != 0) ok = 0;
    if (key && !cert) chmod(path, 0600);
    return ok;
}

static int exists(const char *dir, const char *file) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return access(path, R_OK) == 0;
}

int cfakecerts_ensure(const char *dir, const char *extra_ip, char *err, size_t errlen) {
    if (exists(dir, "ca.crt") && exists(dir, "ca.key") && exists(dir, "server.crt") && exists(dir, "server.key"))
        return 0;
    int rc = -1;
    char path[4096];
    EVP_PKEY *ca_key = NULL, *srv_key = NULL;
    X509 *ca = NULL, *srv = NULL;

    if (!(ca_key = new_key()) || !(srv_key = new_key())) { fail(err, errlen, "generating an EC P-256 key failed"); goto out; }

    ca = new_cert(ca_key, "kube-apiserver-fake CA", 3650);
    if (!ca) { fail(err, errlen, "allocating the CA certificate failed"); goto out; }
    X509_set_issuer_name(ca, X509_get_subject_name(ca));
    if (!add_ext(ca, ca, NID_basic_constraints, "critical,CA:TRUE") ||
        !add_ext(ca, ca, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") ||
        !add_ext(ca, ca, NID_subject_key_identifier, "hash")) { fail(err, errlen, "adding CA extensions failed"); goto out; }
    if (!X509_sign(ca, ca_key, EVP_sha256())) { fail(err, errlen, "signing the CA certificate failed"); goto out; }

    char san[128] = "IP:127.0.0.1,IP:::1,DNS:localhost";
    if (extra_ip && *extra_ip && strlen(extra_ip) < 64 && strcmp(extra_ip, "127.0.0.1") != 0)
        snprintf(san, sizeof san, "IP:127.0.0.1,IP:::1,DNS:localhost,IP:%s", extra_ip);
    srv = new_cert(srv_key, "kube-apiserver-fake", 365);
    if (!srv) { fail(err, errlen, "allocating the server certificate failed"); goto out; }
    X509_set_issuer_name(srv, X509_get_subject_name(ca));
    if (!add_ext(srv, ca, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(srv, ca, NID_key_usage, "critical,digitalSignature,keyEncipherment") ||
        !add_ext(srv, ca, NID_ext_key_usage, "serverAuth") ||
        !add_ext(srv, ca, NID_subject_key_identifier, "hash") ||
        !add_ext(srv, ca, NID_authority_key_identifier, "keyid:always") ||
        !add_ext(srv, ca, NID_subject_alt_name, san)) {
        fail(err, errlen, "adding server certificate extensions failed"); goto out;
    }
    if (!X509_sign(srv, ca_key, EVP_sha256())) { fail(err, errlen, "signing the server certificate failed"); goto out; }

    const struct { const char *file; X509 *cert; EVP_PKEY *key; } files[] = {
        {"ca.key", NULL, ca_key}, {"ca.crt", ca, NULL}, {"server.key", NULL, srv_key}, {"server.crt", srv, NULL},
    };
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i].file);
        if (!write_pem(path, files[i].cert, files[i].key)) {
            snprintf(err, errlen, "writing %s failed; check that the directory exists and is writable", path);
            goto out;
        }
    }
    rc = 0;
out:
    X509_free(ca); X509_free(srv); EVP_PKEY_free(ca_key); EVP_PKEY_free(srv_key);
    return rc;
}
