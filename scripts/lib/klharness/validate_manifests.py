#!/usr/bin/env python3
"""Every Kubernetes manifest under the given folders, validated with
kubernetes-validate (PyPI; the API's own OpenAPI schemas, strict: unknown
fields are errors) for each Kubernetes version given.

Usage: validate_manifests.py --versions 1.25.0,1.37.0 DIR...

Each *.yaml/*.yml file, every document in it:
- a built-in kind (a group without a dot, or ending in .k8s.io) must validate
  for every version; a kind that version does not have is a failure;
- a custom resource (Gatekeeper's ConstraintTemplate, Config, constraints)
  has no schema here: it is SKIPPED with a note, not counted as a pass;
- a document without apiVersion and kind (a CloudFormation template, say)
  is not a Kubernetes manifest: noted, not counted.
Exit 1 when a document fails or a file is not YAML; 0 otherwise.
"""
import os
import sys

import yaml
from kubernetes_validate import utils as kv


class AnyTagLoader(yaml.SafeLoader):
    """Safe loading that tolerates tags such as CloudFormation's !Ref."""


def _any_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


AnyTagLoader.add_multi_constructor("!", _any_tag)


def builtin(api_version):
    group = api_version.split("/")[0] if "/" in api_version else ""
    # core (""), apps, batch, policy, …, and *.k8s.io, except kustomize's own files
    return "." not in group or (group.endswith(".k8s.io") and not group.startswith("kustomize."))


def files(dirs):
    for d in dirs:
        for root, subdirs, names in os.walk(d):
            subdirs.sort()
            for n in sorted(names):
                if n.endswith((".yaml", ".yml")):
                    yield os.path.join(root, n)


def main(argv):
    if len(argv) < 3 or argv[0] != "--versions":
        sys.stderr.write(__doc__)
        return 2
    versions = [v for v in argv[1].split(",") if v]
    known = set(kv.all_versions())
    missing = [v for v in versions if v not in known]
    if missing:
        sys.stderr.write("kubernetes-validate has no schemas for %s (it has %s to %s); install a version that does\n"
                         % (", ".join(missing), min(known, key=kv.major_minor), kv.latest_version()))
        return 2
    passed = failed = skipped = other = 0
    for path in files(argv[2:]):
        try:
            with open(path) as f:
                docs = [d for d in yaml.load_all(f, Loader=AnyTagLoader) if d is not None]
        except yaml.YAMLError as err:
            print("FAIL  %s: not YAML: %s" % (path, err))
            failed += 1
            continue
        for i, doc in enumerate(docs):
            where = "%s[%d]" % (path, i) if len(docs) > 1 else path
            if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
                print("note  %s: not a Kubernetes object (no apiVersion/kind), not validated" % where)
                other += 1
                continue
            what = "%s %s %s" % (doc["apiVersion"], doc["kind"], (doc.get("metadata") or {}).get("name", ""))
            if not builtin(doc["apiVersion"]):
                print("SKIP  %s: %s: custom resource, no schema available here (not counted as a pass)" % (where, what))
                skipped += 1
                continue
            errors = []
            for v in versions:
                try:
                    kv.validate(doc, v, strict=True)
                except kv.SchemaNotFoundError:
                    errors.append("Kubernetes %s has no %s" % (v, what))
                except kv.ValidationError as err:
                    loc = ".".join(str(p) for p in err.path) or "(top level)"
                    errors.append("Kubernetes %s: %s: %s" % (v, loc, err.message))
            if errors:
                failed += 1
                for e in errors:
                    print("FAIL  %s: %s: %s" % (where, what, e))
            else:
                passed += 1
                print("ok    %s: %s (Kubernetes %s)" % (where, what, ", ".join(versions)))
    print("manifests: %d valid for Kubernetes %s, %d failed, %d custom resources skipped (no schema), "
          "%d non-Kubernetes documents" % (passed, " and ".join(versions), failed, skipped, other))
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
