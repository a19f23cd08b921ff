// Certificate generation for kube-apiserver-fake, written against the OpenSSL
// C API (Swift cannot easily build X509 extensions through macros).
#ifndef CFAKECERTS_H
#define CFAKECERTS_H

#include <stddef.h>

/// Makes sure DIR holds ca.crt, ca.key, server.crt and server.key.
///
/// Existing files are kept (a restarted fake keeps its CA, so clients that
/// trusted it keep working). Otherwise writes an EC P-256 CA (basicConstraints
/// CA:TRUE, 10 years) and a server certificate signed by it (1 year, SAN
/// IP:127.0.0.1, IP:::1, DNS:localhost, plus IP:EXTRA_IP when it is given
/// and not 127.0.0.1 (the --host address), serverAuth), all SHA-256.
/// Returns 0 on success; otherwise -1 and a message in err.
int cfakecerts_ensure(const char *dir, const char *extra_ip, char *err, size_t errlen);

#endif
