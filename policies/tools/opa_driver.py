#!/usr/bin/env python3
"""A small `opa` stand-in built on the real OPA engine (OPA 1.20 as a library).

There is no `opa` executable on the test machines, but the PyPI package
`opa-golib-python-bindings` embeds OPA 1.20.2 (install it with
`pip install --ignore-requires-python opa-golib-python-bindings`). This driver
uses it the way `opa test` would:

  opa_driver.py test [--coverage] [--format=json|pretty] PATH...
      Loads every .rego file under PATH, evaluates every `test_` rule in one
      query and prints like `opa test`: with --coverage only OPA's own coverage
      report (JSON, whatever --format says); exit 1 with the failures on
      stderr and no report when a test fails.
  opa_driver.py version
  opa_driver.py check-template TEMPLATE REGO
      Exits 1 unless the Rego embedded in the ConstraintTemplate is REGO.
  opa_driver.py corpus CORPUS POLICY_CHECK [--protocols a,b]
      Evaluates every Service of CORPUS (a List with Namespaces and Services)
      with the Rego policy as Gatekeeper would (kind Service, namespaces
      labelled kube-leader.io/skip-istio-port-names=true opted out) and with
      `POLICY_CHECK istio-ports --format json`, and exits 1 unless both give
      the same messages.
  opa_driver.py pdb-corpus CORPUS POLICY_CHECK
      Evaluates every Deployment and StatefulSet of CORPUS (a List as
      `kubectl get namespaces,deployments,statefulsets,poddisruptionbudgets -A -o json`
      prints it) with the k8srequiredpdb Rego as Gatekeeper would (the List's
      PodDisruptionBudgets as data.inventory, namespaces labelled
      kube-leader.io/skip-pdb-required=true opted out by the namespaceSelector)
      and with `POLICY_CHECK pdb --format json`; exits 1 unless both give the
      same messages and POLICY_CHECK's exit code follows.
  opa_driver.py pdb-generate SEED COUNT
      Prints a seeded random List of COUNT namespaces of workloads and budgets
      (selectors with every operator, int and percent budgets, 0-6 replicas,
      opt-outs) for pdb-corpus.

Being an executable named like `opa` with the same `test` command line, it
lets `policy-check coverage --opa PATH` run for real.
"""

import json
import os
import re
import subprocess
import sys

OPT_OUT_LABEL = "kube-leader.io/skip-istio-port-names"
POLICY_PACKAGE = "k8svalidistioserviceportname"


def engine():
    try:
        from opa_bindings import OpaEngine
    except ImportError:
        sys.stderr.write("opa_driver: the Python module opa_bindings is missing; install it with "
                         "pip install --ignore-requires-python opa-golib-python-bindings\n")
        sys.exit(127)
    return OpaEngine()


def rego_files(paths):
    files = []
    for path in paths:
        if os.path.isfile(path):
            files.append(path)
            continue
        if not os.path.isdir(path):
            sys.stderr.write(f"error: {path}: no such file or directory\n")
            sys.exit(2)
        for root, dirs, names in os.walk(path):
            dirs.sort()
            files += [os.path.join(root, n) for n in sorted(names) if n.endswith(".rego")]
    return files


PACKAGE = re.compile(r"^package\s+([\w.]+)", re.M)
TEST_RULE = re.compile(r"^(test_\w+)\b", re.M)


def load(paths):
    """Adds the modules to a new engine; returns it and {package: [test rules]}."""
    e = engine()
    tests = {}
    for path in rego_files(paths):
        with open(path) as f:
            source = f.read()
        try:
            e.add_policy(path, source)
        except Exception as err:  # a parse or compile error: opa test exits 1
            sys.stderr.write(f"{path}: {err}\n")
            sys.exit(1)
        names = TEST_RULE.findall(source)
        if names:
            pkg = PACKAGE.search(source).group(1)
            tests.setdefault(pkg, [])
            tests[pkg] += [n for n in names if n not in tests[pkg]]
    return e, tests


def run_tests(paths, coverage):
    e, tests = load(paths)
    packages = sorted(tests)
    # One query for every test so one coverage report covers all of them.
    query = "x := [" + ", ".join(f"data.{p}" for p in packages) + "]"
    results, failed = [], 0
    try:
        rs = e.eval_query(query, coverage=coverage) if packages else [{"x": []}]
        docs = rs[0]["x"] if rs else [{} for _ in packages]
        error = None
    except Exception as err:
        docs, error = [{} for _ in packages], str(err)
    for pkg, doc in zip(packages, docs):
        for name in tests[pkg]:
            ok = error is None and doc.get(name) is True
            failed += 0 if ok else 1
            result = {"package": "data." + pkg, "name": name}
            if not ok:
                result["fail"] = True
                if error:
                    result["error"] = {"message": error}
            results.append(result)
    return results, failed, (e.last_coverage if coverage else None)


def cmd_test(args):
    coverage, fmt, paths = False, "pretty", []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--coverage", "-c"):
            coverage = True
        elif a.startswith("--format="):
            fmt = a.split("=", 1)[1]
        elif a == "--format":
            i += 1
            fmt = args[i]
        elif a in ("-v", "--verbose"):
            pass
        elif a.startswith("-"):
            sys.stderr.write(f"error: unknown flag {a}\n")
            return 2
        else:
            paths.append(a)
        i += 1
    if not paths:
        sys.stderr.write("error: no paths given\n")
        return 2
    results, failed, report = run_tests(paths, coverage)
    if failed:
        for r in results:
            if r.get("fail"):
                why = r.get("error", {}).get("message", "")
                sys.stderr.write(f"{r['package']}.{r['name']}: FAIL {why}\n".rstrip() + "\n")
        sys.stderr.write("--------------------------------------------------------------------------------\n")
        sys.stderr.write(f"PASS: {len(results) - failed}/{len(results)}\nFAIL: {failed}/{len(results)}\n")
        return 1
    if coverage:
        print(json.dumps(report, indent=2))
    elif fmt == "json":
        print(json.dumps(results, indent=2))
    else:
        print(f"PASS: {len(results)}/{len(results)}")
    return 0


def template_rego(text):
    """The block scalar after `rego: |` in a ConstraintTemplate, dedented."""
    lines = text.split("\n")
    for n, line in enumerate(lines):
        m = re.match(r"^(\s*)rego:\s*\|[-+]?\s*$", line)
        if not m:
            continue
        body, indent = [], None
        for nxt in lines[n + 1:]:
            if nxt.strip() == "":
                body.append("")
                continue
            width = len(nxt) - len(nxt.lstrip(" "))
            if width <= len(m.group(1)):
                break
            indent = width if indent is None else indent
            body.append(nxt[indent:])
        while body and body[-1] == "":
            body.pop()
        return "\n".join(body) + "\n"
    return None


def cmd_check_template(template, rego):
    with open(template) as f:
        embedded = template_rego(f.read())
    with open(rego) as f:
        source = f.read()
    if embedded != source:
        sys.stderr.write(f"{template}: the embedded Rego differs from {rego}; copy {rego} into "
                         "spec.targets[0].code[0].source.rego\n")
        return 1
    print(f"{template}: embeds {rego} unchanged")
    return 0


def load_corpus_and_policy(corpus, policy_dir, opt_out_label):
    """The corpus's items, an OPA engine holding policies/POLICY_DIR/src.rego,
    and the namespaces that opt out by OPT_OUT_LABEL (Gatekeeper's
    namespaceSelector NotIn ["true"])."""
    with open(corpus) as f:
        items = json.load(f)["items"]
    here = os.path.dirname(os.path.abspath(__file__))
    e = engine()
    src = os.path.join(here, "..", policy_dir, "src.rego")
    with open(src) as f:
        e.add_policy(src, f.read())
    skipped = {i["metadata"]["name"] for i in items if i.get("kind") == "Namespace"
               and i["metadata"].get("labels", {}).get(opt_out_label) == "true"}
    return items, e, skipped


def native_agrees(argv, rego_msgs, what):
    """Runs policy-check (argv, --format json) and compares its violations
    with Rego's messages and its exit code with what they imply; prints the
    differences and returns False when they disagree."""
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        sys.stderr.write(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr}")
        return False
    native_msgs = [v["message"] for v in json.loads(proc.stdout)["violations"]]
    want_rc = 1 if rego_msgs else 0
    if sorted(rego_msgs) != sorted(native_msgs) or proc.returncode != want_rc:
        sys.stderr.write(f"the Rego policy and {what} disagree:\n")
        for m in sorted(set(rego_msgs) - set(native_msgs)):
            sys.stderr.write(f"  only Rego:   {m}\n")
        for m in sorted(set(native_msgs) - set(rego_msgs)):
            sys.stderr.write(f"  only native: {m}\n")
        sys.stderr.write(f"  counts: Rego {len(rego_msgs)}, native {len(native_msgs)}; "
                         f"exit {proc.returncode}, expected {want_rc}\n")
        return False
    return True


def cmd_corpus(args):
    corpus, policy_check = args[0], args[1]
    protocols = None
    if len(args) > 3 and args[2] == "--protocols":
        protocols = [p for p in args[3].split(",") if p]
    items, e, skipped = load_corpus_and_policy(corpus, "istio-port-names", OPT_OUT_LABEL)
    rego_msgs = []
    for obj in items:
        if obj.get("kind") != "Service" or obj.get("metadata", {}).get("namespace", "default") in skipped:
            continue  # Gatekeeper's match: kinds [Service] + namespaceSelector NotIn ["true"]
        inp = {"review": {"object": obj, "kind": {"group": "", "version": "v1", "kind": "Service"}}}
        if protocols is not None:
            inp["parameters"] = {"protocols": protocols}
        out = e.eval_query(f"v := data.{POLICY_PACKAGE}.violation", input=inp)
        rego_msgs += [v["msg"] for v in out[0]["v"]]
    argv = [policy_check, "istio-ports", "--format", "json", corpus]
    if protocols is not None:
        argv += ["--protocols", ",".join(protocols)]
    if not native_agrees(argv, rego_msgs, "policy-check"):
        return 1
    label = f"protocols {','.join(protocols)}" if protocols is not None else "default protocols"
    print(f"{corpus} ({label}): Rego and policy-check agree on {len(rego_msgs)} violations")
    return 0


PDB_OPT_OUT = "kube-leader.io/skip-pdb-required"


def pdb_inventory(items):
    """data.inventory as Gatekeeper's sync builds it from the List's budgets."""
    inv = {}
    for obj in items:
        if obj.get("kind") != "PodDisruptionBudget":
            continue
        ns = obj["metadata"].get("namespace", "default")
        gv = obj.get("apiVersion", "policy/v1")
        inv.setdefault(ns, {}).setdefault(gv, {}).setdefault("PodDisruptionBudget", {})[obj["metadata"]["name"]] = obj
    return {"namespace": inv}


def cmd_pdb_corpus(corpus, policy_check):
    items, e, skipped = load_corpus_and_policy(corpus, "pdb-required", PDB_OPT_OUT)
    e.add_data(pdb_inventory(items), "inventory")
    rego_msgs, workloads = [], 0
    for obj in items:
        if obj.get("kind") not in ("Deployment", "StatefulSet") \
                or obj.get("metadata", {}).get("namespace", "default") in skipped:
            continue  # the Constraint's match: apps Deployment/StatefulSet + namespaceSelector NotIn ["true"]
        workloads += 1
        inp = {"review": {"object": obj, "kind": {"group": "apps", "version": "v1", "kind": obj["kind"]},
                          "namespace": obj["metadata"].get("namespace", "default"), "operation": "CREATE"}}
        out = e.eval_query("v := data.k8srequiredpdb.violation", input=inp)
        rego_msgs += [v["msg"] for v in out[0]["v"]]
    argv = [policy_check, "pdb", "--format", "json", corpus]
    if not native_agrees(argv, rego_msgs, "policy-check pdb"):
        return 1
    kinds = {}
    for m in rego_msgs:
        reason = m.split(": ", 1)[1]
        key = ("no budget" if "no PodDisruptionBudget" in reason else "blocks every drain" if "blocks every" in reason
               else "no disruption at full scale" if "full scale" in reason else "several budgets")
        kinds[key] = kinds.get(key, 0) + 1
    detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"{corpus}: Rego and policy-check pdb agree on {workloads} workloads: {len(rego_msgs)} violations ({detail})")
    return 0


def cmd_pdb_generate(seed, count):
    """A seeded random corpus that reaches every branch of both implementations."""
    import random
    rnd = random.Random(seed)
    keys = ["app", "tier", "env", "canary"]
    vals = ["a", "b", "c"]
    items = []

    def labels():
        return {k: rnd.choice(vals) for k in keys if rnd.random() < 0.6}

    def amount():
        return rnd.choice([0, 1, 2, 3, 5, "0%", "1%", "25%", "34%", "50%", "67%", "90%", "100%"])

    for n in range(count):
        ns = f"ns{n}"
        nslabels = {"kubernetes.io/metadata.name": ns}
        if rnd.random() < 0.1:
            nslabels[PDB_OPT_OUT] = rnd.choice(["true", "false"])
        items.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": nslabels}})
        for w in range(rnd.randint(1, 3)):
            obj = {"apiVersion": "apps/v1", "kind": rnd.choice(["Deployment", "StatefulSet", "DaemonSet"]),
                   "metadata": {"name": f"w{w}", "namespace": ns},
                   "spec": {"template": {"metadata": {"labels": labels()}}}}
            if rnd.random() < 0.9:
                obj["spec"]["replicas"] = rnd.randint(0, 6)
            if rnd.random() < 0.08:
                obj["metadata"]["annotations"] = {PDB_OPT_OUT: rnd.choice(["true", "false"])}
            items.append(obj)
        for b in range(rnd.randint(0, 3)):
            spec = {}
            r = rnd.random()
            if r < 0.08:
                pass  # no selector: selects nothing
            elif r < 0.15:
                spec["selector"] = {}
            else:
                sel = {}
                if rnd.random() < 0.7:
                    sel["matchLabels"] = {k: rnd.choice(vals) for k in rnd.sample(keys, rnd.randint(0, 2))}
                if rnd.random() < 0.5:
                    exprs = []
                    for _ in range(rnd.randint(1, 2)):
                        op = rnd.choice(["In", "NotIn", "Exists", "DoesNotExist"])
                        ex = {"key": rnd.choice(keys), "operator": op}
                        if op in ("In", "NotIn"):
                            ex["values"] = rnd.sample(vals, rnd.randint(1, 2))
                        exprs.append(ex)
                    sel["matchExpressions"] = exprs
                spec["selector"] = sel
            r = rnd.random()
            if r < 0.45:
                spec["maxUnavailable"] = amount()
            elif r < 0.9:
                spec["minAvailable"] = amount()
            elif r < 0.95:
                spec["maxUnavailable"], spec["minAvailable"] = amount(), amount()
            items.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                          "metadata": {"name": f"b{b}", "namespace": ns}, "spec": spec})
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=1))
    return 0


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "version":
        print("Version: 1.20.2 (opa-golib-python-bindings via policies/tools/opa_driver.py)")
        return 0
    if cmd == "test":
        return cmd_test(rest)
    if cmd == "check-template" and len(rest) == 2:
        return cmd_check_template(*rest)
    if cmd == "corpus" and len(rest) >= 2:
        return cmd_corpus(rest)
    if cmd == "pdb-corpus" and len(rest) == 2:
        return cmd_pdb_corpus(*rest)
    if cmd == "pdb-generate" and len(rest) == 2:
        return cmd_pdb_generate(int(rest[0]), int(rest[1]))
    sys.stderr.write(f"error: unknown command {' '.join(argv)}; run with --help\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
