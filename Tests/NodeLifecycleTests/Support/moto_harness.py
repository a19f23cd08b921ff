#!/usr/bin/env python3
"""Starts moto_server with signature checking on and prepares it for tests.

  moto_harness.py start DIR      -> prints {"url","pid","access_key","secret_key","queue_url","role_arn"}
  moto_harness.py unsigned URL N -> the next N actions may be unsigned (moto
                                    checks SigV4 on every action, even STS
                                    AssumeRoleWithWebIdentity, which AWS does not sign)
  moto_harness.py stop PID

moto is started with INITIAL_NO_AUTH_ACTION_COUNT=0. Setting up the IAM user
and queue needs a few unchecked actions: the harness opens that window
through moto's /moto-api/reset-auth and closes it (back to 0) before handing
the server to the test.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

POLICY = json.dumps({"Version": "2012-10-17",
                     "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
TRUST = json.dumps({"Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Principal": {"Federated": "oidc"},
                                   "Action": "sts:AssumeRoleWithWebIdentity"}]})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reset_auth(url, count):
    req = urllib.request.Request(url + "/moto-api/reset-auth", data=str(count).encode(), method="POST",
                                 headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req, timeout=10).read()


def start(directory):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="0")
    log = open(os.path.join(directory, "moto.log"), "wb")
    proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=2).read()
            break
        except Exception:
            if proc.poll() is not None or time.time() > deadline:
                sys.exit("moto_server did not start; see " + os.path.join(directory, "moto.log"))
            time.sleep(0.2)

    import boto3
    reset_auth(url, 1000)
    kw = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
    iam = boto3.client("iam", **kw)
    iam.create_user(UserName="node-lifecycle-test")
    iam.put_user_policy(UserName="node-lifecycle-test", PolicyName="all", PolicyDocument=POLICY)
    key = iam.create_access_key(UserName="node-lifecycle-test")["AccessKey"]
    role = iam.create_role(RoleName="drainer", AssumeRolePolicyDocument=TRUST)["Role"]
    iam.put_role_policy(RoleName="drainer", PolicyName="all", PolicyDocument=POLICY)
    queue_url = boto3.client("sqs", **kw).create_queue(QueueName="node-drain")["QueueUrl"]
    # Three instances for --managed-tag: the first and third carry
    # cluster=prod, the second cluster=staging (another cluster sharing the queue).
    ec2 = boto3.client("ec2", **kw)
    ids = [i["InstanceId"] for i in ec2.run_instances(ImageId="ami-12345678", MinCount=3, MaxCount=3)["Instances"]]
    ec2.create_tags(Resources=[ids[0], ids[2]], Tags=[{"Key": "cluster", "Value": "prod"}])
    ec2.create_tags(Resources=[ids[1]], Tags=[{"Key": "cluster", "Value": "staging"}])
    reset_auth(url, 0)
    print(json.dumps({"url": url, "pid": proc.pid, "access_key": key["AccessKeyId"],
                      "secret_key": key["SecretAccessKey"], "queue_url": queue_url, "role_arn": role["Arn"],
                      "instances": ids}))


def sqs_client(moto):
    """A boto3 SQS client for the server `start` printed, with its test user's keys."""
    import boto3
    return boto3.client("sqs", endpoint_url=moto["url"], region_name="us-east-1",
                        aws_access_key_id=moto["access_key"], aws_secret_access_key=moto["secret_key"])


def main():
    cmd = sys.argv[1]
    if cmd == "start":
        start(sys.argv[2])
    elif cmd == "unsigned":
        reset_auth(sys.argv[2], int(sys.argv[3]))
    elif cmd == "stop":
        try:
            os.killpg(int(sys.argv[2]), signal.SIGTERM)
        except ProcessLookupError:
            pass
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
