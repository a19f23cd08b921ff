#!/usr/bin/env bash
# The README stays what a platform engineer reads before adopting: under
# 16,000 bytes, the rest in docs/ and linked. Every relative link in
# README.md and docs/*.md must resolve: the file exists and, for a
# `#fragment`, a heading with that GitHub anchor exists in it. Every repository
# path they name outside code blocks (Sources/..., Tests/..., scripts/...,
# docs/..., or a module-relative Core/X.swift) exists, and no `file.swift:NN`
# line number is given (they drift). First a check that the checkers catch a
# missing file, a missing anchor, a missing path and a line number.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$ROOT"

python3 - "$@" <<'PY'
import glob, os, re, sys, tempfile

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

ROOTS = ("Sources/", "Tests/", "scripts/", "docs/", "deploy/", "policies/")
MODULE_DIRS = ["Sources/", "Tests/"] + glob.glob("Sources/*/") + glob.glob("Sources/Companions/*/") + glob.glob("Sources/Companions/*/*/") + glob.glob("Tests/*/") + glob.glob("Tests/*/*/")

def bad_paths(path):
    bad, in_code = [], False
    for i, line in enumerate(open(path, encoding="utf-8"), 1):
        if line.startswith("```"):
            in_code = not in_code
        if in_code:
            continue
        if re.search(r"\.(swift|py|sh|c|h):[0-9]+", line):
            bad.append(f"{path}:{i}: a line number: they drift; name the function or the section")
        for p in re.findall(r"(?<![\w./-])((?:[A-Za-z0-9_.+-]+/)+[A-Za-z0-9_.*+-]*[A-Za-z0-9_*])", line):
            if p.startswith(ROOTS):
                if not glob.glob(p):
                    bad.append(f"{path}:{i}: {p}: no such path")
            elif re.match(r"[A-Z][A-Za-z]+/[A-Za-z0-9_+*]+\.(swift|c|h)$", p):
                if not any(glob.glob(d + p) for d in MODULE_DIRS):
                    bad.append(f"{path}:{i}: {p}: no such file below Sources/ or Tests/")
    return bad

# The checkers must be able to fail.
with tempfile.TemporaryDirectory() as d:
    sample = os.path.join(d, "a.md")
    open(sample, "w").write("# A `b` (c)\n[ok](#a-b-c) [gone](nothing.md) [no anchor](a.md#missing)\n"
                            "`Core/Election.swift` `Core/Gone.swift` (Sources/Gone/X.swift) `Core/Election.swift:12`\n")
    got = bad_links(sample)
    if len(got) != 2:
        sys.exit(f"FAIL: the link checker found {got} in a sample with 2 bad links")
    got = bad_paths(sample)
    if len(got) != 3:
        sys.exit(f"FAIL: the path checker found {got} in a sample with 2 missing paths and a line number")

size = os.path.getsize("README.md")
problems = [] if size < 16000 else [f"README.md is {size} bytes (limit: under 16,000); move detail to docs/ and link it"]
files = ["README.md"] + sorted(os.path.join("docs", f) for f in os.listdir("docs") if f.endswith(".md"))
for f in files:
    problems += bad_links(f) + bad_paths(f)
for p in problems:
    print(p)
if problems:
    sys.exit(1)
print(f"README.md {size} bytes; relative links and repository paths in {len(files)} files resolve")
PY
