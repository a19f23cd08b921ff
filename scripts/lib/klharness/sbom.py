#!/usr/bin/env python3
"""What is inside each static binary, written by scripts/build-static.

Usage: sbom.py DIST ARCH PRODUCT...

For each PRODUCT, runs DIST/PRODUCT-linux-ARCH --version (which asks the
libraries inside the binary themselves: see BuildInfo.swift) and writes
DIST/PRODUCT-linux-ARCH.cdx.json, a CycloneDX 1.6 JSON SBOM naming the binary
and what is linked into it, with versions and licences:

- the Swift runtime and standard library (Apache-2.0 WITH Swift-exception),
  the version the binary reports, which must equal `swift --version`;
- glibc (LGPL-2.1-or-later), the version the binary reports at run time and
  the Debian package (libc6-dev) it was linked from;
- OpenSSL (Apache-2.0) for the binaries that link it, the version
  OpenSSL_version() reports inside the binary and the Debian package
  (libssl-dev) it was linked from; with a CPE so scanners (Grype, Trivy) match
  advisories.

Then DIST/BUILDINFO-linux-ARCH.txt, the same facts as text. Fails (exit 1),
naming both versions, when what a binary reports does not match the package
it was built from, or when the OpenSSL inside is older than the newest
libssl-dev the package sources offer. No timestamps or random serial numbers:
the same build gives the same files.
"""
import hashlib
import json
import os
import re
import subprocess
import sys

LICENSES = {
    "swift": "Apache-2.0 WITH Swift-exception",
    "glibc": "LGPL-2.1-or-later",
    "openssl": "Apache-2.0",
    "ours": "Apache-2.0",
}


def fail(msg):
    print("sbom.py: ERROR: " + msg, file=sys.stderr)
    sys.exit(1)


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def deb_installed(pkg):
    r = run(["dpkg-query", "-W", "-f=${Version}", pkg])
    return r.stdout.strip() if r.returncode == 0 else ""


def deb_newest(pkg):
    """The newest version of pkg any configured package source offers."""
    newest = ""
    for line in run(["apt-cache", "madison", pkg]).stdout.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 2 and parts[0] == pkg:
            v = parts[1]
            if not newest or run(["dpkg", "--compare-versions", v, "gt", newest]).returncode == 0:
                newest = v
    return newest


def upstream(debian_version):
    """3.0.22-1~deb12u2 -> 3.0.22; 1:1.2.13.dfsg-1 -> 1.2.13.dfsg."""
    v = debian_version.split(":", 1)[-1]
    return v.rsplit("-", 1)[0] if "-" in v else v


def version_lt(a, b):
    return run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0


def parse_version_output(text, product):
    """kube-leader 0.3.0 (source commit abc)\\nswift: 6.3.1\\nlibc: glibc 2.36\\nopenssl: OpenSSL 3.0.22 25 Aug 2026"""
    lines = text.splitlines()
    m = re.match(r"^%s (\S+) \(source commit (\S+)\)$" % re.escape(product), lines[0] if lines else "")
    if not m:
        fail("%s --version: first line is not '%s VERSION (source commit C)': %r" % (product, product, text))
    info = {"version": m.group(1), "commit": m.group(2)}
    for line in lines[1:]:
        key, _, value = line.partition(": ")
        info[key] = value
    for key in ("swift", "libc"):
        if key not in info:
            fail("%s --version does not report its %s: %r" % (product, key, text))
    return info


def purl_deb(source, version, arch):
    return "pkg:deb/debian/%s@%s?arch=%s&distro=debian-12" % (source, version.replace("+", "%2B").replace(":", "%3A"), arch)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    dist, arch, products = argv[0], argv[1], argv[2:]
    deb_arch = run(["dpkg", "--print-architecture"]).stdout.strip() or arch
    sv = run(["swift", "--version"])
    m = re.search(r"Swift version (\S+)", sv.stdout + sv.stderr)
    toolchain = m.group(1) if m else ""
    if not toolchain:
        fail("swift --version does not say 'Swift version X'")
    libc_dev = deb_installed("libc6-dev")
    ssl_dev = deb_installed("libssl-dev")
    ssl_newest = deb_newest("libssl-dev")
    info_lines = [
        "Built by scripts/build-static. What each binary reports (--version) and the packages it was linked from.",
        "swift toolchain: %s (swift --version)" % toolchain,
        "libc6-dev: %s (glibc, linked statically)" % libc_dev,
        "libssl-dev: %s installed, newest offered by the package sources: %s (OpenSSL, linked statically)" % (
            ssl_dev, ssl_newest or "none listed"),
        "",
    ]
    for product in products:
        path = os.path.join(dist, "%s-linux-%s" % (product, arch))
        r = run([path, "--version"])
        if r.returncode != 0:
            fail("%s --version exited %d: %s" % (path, r.returncode, r.stderr.strip()))
        info = parse_version_output(r.stdout, product)
        if info["swift"] != toolchain:
            fail("%s says it was built with Swift %s but swift --version is %s (BuildInfo.swiftVersion's "
                 "#if compiler chain needs this toolchain)" % (product, info["swift"], toolchain))
        lm = re.match(r"^glibc (\S+)$", info["libc"])
        if not lm:
            fail("%s reports libc %r, not glibc: this SBOM knows glibc only" % (product, info["libc"]))
        glibc = lm.group(1)
        if upstream(libc_dev) != glibc:
            fail("%s contains glibc %s but libc6-dev %s is installed" % (product, glibc, libc_dev))
        digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
        ours = {
            "type": "application", "bom-ref": product, "name": product, "version": info["version"],
            "licenses": [{"license": {"id": LICENSES["ours"]}}],
            "hashes": [{"alg": "SHA-256", "content": digest}],
            "properties": [{"name": "kube-leader:source-commit", "value": info["commit"]},
                           {"name": "kube-leader:asset", "value": os.path.basename(path)}],
        }
        components = [{
            "type": "library", "bom-ref": "swift-runtime", "name": "swift-runtime", "version": info["swift"],
            "description": "Swift runtime and standard library, linked statically (--static-swift-stdlib)",
            "licenses": [{"expression": LICENSES["swift"]}],
            "purl": "pkg:generic/swift-runtime@%s" % info["swift"],
            "externalReferences": [{"type": "website", "url": "https://www.swift.org"}],
        }, {
            "type": "library", "bom-ref": "glibc", "name": "glibc", "version": glibc,
            "description": "GNU C library, linked statically from Debian's libc6-dev %s" % libc_dev,
            "licenses": [{"expression": LICENSES["glibc"]}],
            "purl": purl_deb("glibc", libc_dev, deb_arch),
            "cpe": "cpe:2.3:a:gnu:glibc:%s:*:*:*:*:*:*:*" % glibc,
            "properties": [{"name": "kube-leader:debian-package", "value": "libc6-dev=%s" % libc_dev}],
        }]
        line = "%s %s (source commit %s): sha256 %s; swift %s; glibc %s" % (
            os.path.basename(path), info["version"], info["commit"], digest, info["swift"], glibc)
        if "openssl" in info:
            om = re.match(r"^OpenSSL (\d+\.\d+\.\d+)\b", info["openssl"])
            if not om:
                fail("%s reports OpenSSL as %r" % (product, info["openssl"]))
            openssl = om.group(1)
            if not ssl_dev:
                fail("%s contains OpenSSL %s but libssl-dev is not installed" % (product, openssl))
            if upstream(ssl_dev) != openssl:
                fail("%s contains OpenSSL %s but libssl-dev %s is installed: it was linked from elsewhere"
                     % (product, openssl, ssl_dev))
            if ssl_newest and version_lt(openssl, upstream(ssl_newest)):
                fail("%s contains OpenSSL %s, older than the newest libssl-dev the package sources offer (%s); "
                     "run apt-get update && apt-get install libssl-dev and build again" % (product, openssl, ssl_newest))
            components.append({
                "type": "library", "bom-ref": "openssl", "name": "openssl", "version": openssl,
                "description": "OpenSSL libssl and libcrypto (%s as the library reports it), linked statically "
                               "from Debian's libssl-dev %s" % (info["openssl"], ssl_dev),
                "licenses": [{"expression": LICENSES["openssl"]}],
                "purl": purl_deb("openssl", ssl_dev, deb_arch),
                "cpe": "cpe:2.3:a:openssl:openssl:%s:*:*:*:*:*:*:*" % openssl,
                "properties": [{"name": "kube-leader:debian-package", "value": "libssl-dev=%s" % ssl_dev},
                               {"name": "kube-leader:openssl-version-text", "value": info["openssl"]}],
            })
            line += "; %s" % info["openssl"]
        bom = {
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "version": 1,
            "metadata": {
                "tools": {"components": [{"type": "application", "name": "kube-leader scripts/lib/klharness/sbom.py"}]},
                "component": ours,
            },
            "components": components,
            "dependencies": [{"ref": product, "dependsOn": [c["bom-ref"] for c in components]}]
                            + [{"ref": c["bom-ref"], "dependsOn": []} for c in components],
        }
        with open(path + ".cdx.json", "w") as f:
            json.dump(bom, f, indent=2, sort_keys=True)
            f.write("\n")
        info_lines.append(line)
    with open(os.path.join(dist, "BUILDINFO-linux-%s.txt" % arch), "w") as f:
        f.write("\n".join(info_lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
