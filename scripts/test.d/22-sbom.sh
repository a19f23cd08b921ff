#!/usr/bin/env bash
# What the static binaries say is inside them (docs/release.md), for each binary in
# dist/ (built by 20-static.sh, or here when missing):
# - `--version`: the Swift version equals `swift --version`; the libc line is
#   the glibc of the libc6-dev the binary was linked from; kube-leader,
#   pager-tester and node-lifecycle print the OpenSSL inside them, which must
#   be the version `openssl version` (same Debian source package, upgraded
#   together by scripts/build-static) and dpkg's libssl-dev report, and no
#   older than the newest libssl-dev the package sources offer; policy-check,
#   which does not link OpenSSL, prints none;
# - the SBOM NAME-linux-ARCH.cdx.json: valid CycloneDX 1.6 (cyclonedx-python-lib's
#   strict JSON validator), valid SPDX licence expressions, the binary's own
#   sha256, and the same component versions as its --version; SHA256SUMS
#   covers binaries and SBOMs.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$ROOT"
arch="$(uname -m)"
[[ -f dist/kube-leader-linux-$arch && -f dist/kube-leader-linux-$arch.cdx.json ]] || scripts/build-static
fail=0
bad() { log "FAIL: $*"; fail=1; }

swift_version=$(swift --version 2>&1 | sed -n 's/.*Swift version \([^ ]*\).*/\1/p' | head -1)
openssl_cli=$(openssl version | awk '{print $2}')
ssl_dev=$(dpkg-query -W -f='${Version}' libssl-dev)
libc_dev=$(dpkg-query -W -f='${Version}' libc6-dev)
ssl_newest=$(newest_apt_version libssl-dev)
upstream() { local v=${1#*:}; printf '%s\n' "${v%-*}"; }
log "toolchain: Swift $swift_version; openssl version: $openssl_cli; libssl-dev $ssl_dev (newest offered: ${ssl_newest:-?}); libc6-dev $libc_dev"
[[ -n $swift_version ]] || bad "swift --version does not say 'Swift version X'"
[[ $openssl_cli == "$(upstream "$ssl_dev")" ]] || bad "openssl version ($openssl_cli) and libssl-dev ($ssl_dev) are not the same OpenSSL"

checked=0
for p in kube-leader policy-check pager-tester node-lifecycle; do
  f="dist/$p-linux-$arch"
  if [[ ! -f $f ]]; then
    [[ $p == kube-leader ]] && bad "$f was not built"
    continue
  fi
  out=$("$f" --version) || { bad "$f --version exited $?"; continue; }
  printf '%s\n' "$out" | sed "s/^/    $p: /" >&2
  first=$(head -1 <<<"$out")
  [[ $first =~ ^$p\ [^\ ]+\ \(source\ commit\ [^\ ]+\)$ ]] || bad "$p --version first line: $first"
  got_swift=$(sed -n 's/^swift: //p' <<<"$out")
  [[ $got_swift == "$swift_version" ]] || bad "$p says Swift '$got_swift', swift --version says $swift_version"
  got_libc=$(sed -n 's/^libc: //p' <<<"$out")
  [[ $got_libc == "glibc $(upstream "$libc_dev")" ]] || bad "$p says libc '$got_libc', libc6-dev is $libc_dev"
  got_ssl=$(sed -n 's/^openssl: //p' <<<"$out")
  if [[ $p == policy-check ]]; then
    [[ -z $got_ssl ]] || bad "policy-check does not link OpenSSL but prints '$got_ssl'"
  else
    ssl_ver=$(awk '{print $2}' <<<"$got_ssl")
    [[ $got_ssl == OpenSSL\ * ]] || bad "$p prints no OpenSSL version: $out"
    [[ $ssl_ver == "$openssl_cli" ]] || bad "$p embeds OpenSSL '$ssl_ver' but openssl version (the same Debian package) is $openssl_cli"
    [[ $ssl_ver == "$(upstream "$ssl_dev")" ]] || bad "$p embeds OpenSSL '$ssl_ver' but libssl-dev is $ssl_dev"
    if [[ -n $ssl_newest ]] && dpkg --compare-versions "$ssl_ver" lt "$(upstream "$ssl_newest")"; then
      bad "$p embeds OpenSSL $ssl_ver, older than libssl-dev $ssl_newest offered by the package sources"
    fi
    # The text is the version string of the libcrypto linked in (grep reads all: pipefail).
    strings -n 8 "$f" | grep -xF "$got_ssl" >/dev/null || bad "$p: '$got_ssl' is not a string in the binary"
  fi
  checked=$((checked + 1))

  sbom="$f.cdx.json"
  [[ -f $sbom ]] || { bad "$sbom is missing"; continue; }
  python3 - "$sbom" "$f" "$out" <<'PY' || fail=1
import hashlib, json, sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from license_expression import get_spdx_licensing

sbom_path, binary, version_out = sys.argv[1:4]
text = open(sbom_path).read()
errors = []
err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
if err is not None:
    errors.append("not valid CycloneDX 1.6: %s" % err)
bom = json.loads(text)
info = dict(l.split(": ", 1) for l in version_out.splitlines()[1:] if ": " in l)
product, version = version_out.splitlines()[0].split()[:2]
me = bom["metadata"]["component"]
if (me["name"], me["version"]) != (product, version):
    errors.append("metadata.component is %s %s, --version says %s %s" % (me["name"], me["version"], product, version))
if me["hashes"][0]["content"] != hashlib.sha256(open(binary, "rb").read()).hexdigest():
    errors.append("metadata.component's sha256 is not the binary's")
comps = {c["name"]: c for c in bom["components"]}
want = {"swift-runtime": (info["swift"], "Apache-2.0 WITH Swift-exception"),
        "glibc": (info["libc"].split()[1], "LGPL-2.1-or-later")}
if "openssl" in info:
    want["openssl"] = (info["openssl"].split()[1], "Apache-2.0")
if set(comps) != set(want):
    errors.append("components %s, want %s" % (sorted(comps), sorted(want)))
licensing = get_spdx_licensing()
for name, (ver, lic) in want.items():
    c = comps.get(name)
    if c is None:
        continue
    if c["version"] != ver:
        errors.append("%s version %s in the SBOM, %s in --version" % (name, c["version"], ver))
    expr = c["licenses"][0].get("expression") or c["licenses"][0]["license"]["id"]
    if expr != lic:
        errors.append("%s licence %s, want %s" % (name, expr, lic))
    v = licensing.validate(expr, strict=True)
    if v.errors or v.invalid_symbols:
        errors.append("%s licence %r is not a valid SPDX expression: %s %s" % (name, expr, v.errors, v.invalid_symbols))
deps = {d["ref"]: d.get("dependsOn", []) for d in bom["dependencies"]}
if sorted(deps.get(product, [])) != sorted(c["bom-ref"] for c in bom["components"]):
    errors.append("dependencies of %s do not list every component" % product)
for e in errors:
    print("==> FAIL: %s: %s" % (sbom_path, e), file=sys.stderr)
if not errors:
    print("==> ok: %s: valid CycloneDX 1.6, %s" % (sbom_path, ", ".join("%s %s (%s)" % (n, v, l) for n, (v, l) in sorted(want.items()))), file=sys.stderr)
sys.exit(1 if errors else 0)
PY
done
(cd dist && sha256sum --quiet -c SHA256SUMS) || bad "dist/SHA256SUMS does not match"
# Every binary the last build listed comes with its SBOM (a partial build,
# scripts/build-static kube-leader, lists only what it built).
for p in kube-leader policy-check pager-tester node-lifecycle; do
  grep -q " $p-linux-$arch\$" dist/SHA256SUMS || continue
  grep -q " $p-linux-$arch.cdx.json\$" dist/SHA256SUMS || bad "SHA256SUMS lists $p-linux-$arch but not its SBOM"
done
grep -q " kube-leader-linux-$arch\$" dist/SHA256SUMS || bad "SHA256SUMS does not list kube-leader-linux-$arch"
(( checked > 0 )) || bad "no binary checked"
[[ $fail == 0 ]] && log "ok: $checked binaries say what is inside them; SBOMs valid and consistent"
exit $fail
