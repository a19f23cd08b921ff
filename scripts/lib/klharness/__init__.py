"""kube-leader's Python test harness, one module per role (docs/test-harness.md).

Entry points run as modules with scripts/lib on PYTHONPATH (scripts/lib/common.sh
sets it): `python3 -m klharness.chaos`, through the thin wrappers scripts/chaos,
scripts/bench, scripts/demo, scripts/node-scale and the checks in scripts/test.d.

Building blocks:
  processes  the built binaries, plain processes, ports, waiting
  procfs     what /proc says about a process (memory, CPU time, state, children) and the machine
  cluster    kube-apiserver-fake (TLS client, control API, the lock) and kube-leader replicas
  workerlog  the children's record (scripts/lib/worker.py's log) and the overlap detector
  aws        node-lifecycle's AWS doubles (Tests/NodeLifecycleTests/Support)
  netns      network namespaces and the cuts made in them (chaos --netns)

Programs:
  demo, chaos, bench, nodescale              scripts/demo, scripts/chaos, scripts/bench, scripts/node-scale
  hostile, hostile_server                    the built kube-leader against a broken API server (75-hostile)
  container_contract, sbom, validate_manifests   static build and manifests (26, 21/22, 45)
  test_chaos, test_hostile, test_netns       self-tests of the checks (python3 -m unittest)

Only the standard library, except where a program says otherwise (nodescale:
boto3 and PyYAML; sbom, validate_manifests: their validators).
"""
