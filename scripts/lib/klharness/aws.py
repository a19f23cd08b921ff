"""node-lifecycle's AWS doubles: moto_server's SQS with signature checking and
the Auto Scaling / CloudFormation Query double. They live with the Swift tests
that run them by path (Tests/NodeLifecycleTests/Support, also on PYTHONPATH
for nodescale's imports); these start them as processes."""
import json
import os
import subprocess
import sys

from klharness.processes import ROOT

NODE_LIFECYCLE_SUPPORT = os.path.join(ROOT, "Tests", "NodeLifecycleTests", "Support")


def start_moto(workdir):
    """moto_server's SQS with signature checking (moto_harness.py): its JSON
    (url, pid, access_key, secret_key, queue_url, role_arn). Stop it with
    processes.kill_group(pid)."""
    return json.loads(subprocess.check_output([sys.executable, os.path.join(NODE_LIFECYCLE_SUPPORT, "moto_harness.py"),
                                               "start", workdir]))


def start_query_double(workdir, access_key, secret_key):
    """The Auto Scaling / CloudFormation Query double (query_double.py): its
    JSON (url, pid). Stop it with processes.kill_group(pid)."""
    return json.loads(subprocess.check_output([sys.executable, os.path.join(NODE_LIFECYCLE_SUPPORT, "query_double.py"),
                                               "start", workdir, access_key, secret_key]))


def node_lifecycle_env(moto, auto_scaling_url):
    """The whole environment of a node-lifecycle process against moto's SQS
    and an Auto Scaling endpoint, with moto's credentials."""
    return {"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": moto["access_key"], "AWS_SECRET_ACCESS_KEY": moto["secret_key"],
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_SQS": moto["url"], "AWS_ENDPOINT_URL_AUTO_SCALING": auto_scaling_url,
            "AWS_EC2_METADATA_DISABLED": "true", "NODE_LIFECYCLE_QUEUE_URL": moto["queue_url"]}
