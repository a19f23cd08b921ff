#!/usr/bin/env bash
# The README stays what a platform engineer reads before adopting: under
# 16,000 bytes, the rest in docs/ and linked. Every relative link in
# README.md and docs/*.md must resolve: the file exists and, for a
# `#fragment`, a heading with that GitHub anchor exists in it. First a check
# that the checker catches a missing file and a missing anchor.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$ROOT"

python3 - "$@" <<'PY'
import os, re, sys, tempfile

def anchors(path):
    seen, out = {}, set()
    in_code = False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            in_code = not in_code
        if in_code:
            continue
        m = re.match(r"#{1,6} +(.*?) *#* *$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out

def bad_links(path):
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # links in code blocks are not links
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        file, _, frag = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        if not os.path.exists(dest):
            bad.append(f"{path}: link to {target}: no such file")
        elif frag and dest.endswith(".md") and frag not in anchors(dest):
            bad.append(f"{path}: link to {target}: no heading with that anchor in {dest}")
    return bad

# The checker must be able to fail.
with tempfile.TemporaryDirectory() as d:
    sample = os.path.join(d, "a.md")
    open(sample, "w").write("# A `b` (c)\n[ok](#a-b-c) [gone](nothing.md) [no anchor](a.md#missing)\n")
    got = bad_links(sample)
    if len(got) != 2:
        sys.exit(f"FAIL: the link checker found {got} in a sample with 2 bad links")

size = os.path.getsize("README.md")
problems = [] if size < 16000 else [f"README.md is {size} bytes (limit: under 16,000); move detail to docs/ and link it"]
files = ["README.md"] + sorted(os.path.join("docs", f) for f in os.listdir("docs") if f.endswith(".md"))
for f in files:
    problems += bad_links(f)
for p in problems:
    print(p)
if problems:
    sys.exit(1)
print(f"README.md {size} bytes; relative links in {len(files)} files resolve")
PY
