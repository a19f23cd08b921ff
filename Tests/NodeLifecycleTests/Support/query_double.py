#!/usr/bin/env python3
"""Test double for the Query actions moto lacks: Auto Scaling
CompleteLifecycleAction / RecordLifecycleActionHeartbeat and CloudFormation
SignalResource.

Every request's SigV4 signature is recomputed with botocore's SigV4Auth (clock
frozen at the request's X-Amz-Date) and must match; otherwise 403
SignatureDoesNotMatch, as AWS answers. Accepted calls are recorded.
Like Auto Scaling, a lifecycle action is gone once completed: later heartbeats
or completions for its token get 400 ValidationError "No active Lifecycle
Action found ...".

  query_double.py start DIR ACCESS_KEY SECRET -> prints {"url": ..., "pid": ...}
  query_double.py stop PID
  GET  /calls  -> JSON array of {"action", "service", "params", "time"}
"""
import datetime
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICES = {"CompleteLifecycleAction": "autoscaling", "RecordLifecycleActionHeartbeat": "autoscaling",
            "SignalResource": "cloudformation"}


def xml_error(code, message, status):
    body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>")
    return status, body


def verify(handler, body, keys):
    """Returns None when the signature matches, else an error message."""
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    auth = handler.headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "Authorization header missing or not SigV4"
    fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    key, date, region, service, _ = fields["Credential"].split("/")
    if key not in keys:
        return "unknown access key " + key
    signed = fields["SignedHeaders"].split(";")
    amz_date = handler.headers.get("X-Amz-Date", "")
    frozen = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    botocore.auth.get_current_datetime = lambda *a, **k: frozen
    req = AWSRequest(method=handler.command, url="http://" + handler.headers["Host"] + handler.path, data=body)
    for name in signed:
        if name in ("x-amz-date", "x-amz-security-token"):
            continue
        req.headers[name] = handler.headers.get(name, "")
    token = handler.headers.get("X-Amz-Security-Token")
    botocore.auth.SigV4Auth(Credentials(key, keys[key], token), service, region).add_auth(req)
    if req.headers["Authorization"] != auth:
        return "The request signature we calculated does not match the signature you provided."
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, body, ctype="text/xml"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/calls":
            with self.server.lock:
                self.answer(200, json.dumps(self.server.calls), "application/json")
        else:
            self.answer(*xml_error("NotFound", "no such path", 404))

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        params = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
        action = params.get("Action", "")
        problem = verify(self, body, self.server.keys)
        if problem:
            return self.answer(*xml_error("SignatureDoesNotMatch", problem, 403))
        scope_service = self.headers["Authorization"].split("Credential=")[1].split("/")[3]
        if action not in SERVICES:
            return self.answer(*xml_error("InvalidAction", f"Could not find operation {action}", 400))
        if SERVICES[action] != scope_service:
            return self.answer(*xml_error("SignatureDoesNotMatch", f"{action} signed for {scope_service}", 403))
        with self.server.lock:
            token = params.get("LifecycleActionToken")
            if action != "SignalResource" and token in self.server.completed:
                return self.answer(*xml_error(
                    "ValidationError", f"No active Lifecycle Action found with instance ID {params.get('InstanceId')}", 400))
            if action == "CompleteLifecycleAction":
                self.server.completed.add(token)
            self.server.calls.append({"action": action, "service": scope_service, "params": params,
                                      "time": time.time()})
        self.answer(200, f"<{action}Response><{action}Result/><ResponseMetadata><RequestId>r</RequestId>"
                         f"</ResponseMetadata></{action}Response>")


def serve(ready_file, key, secret):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.keys = {key: secret}
    server.calls = []
    server.completed = set()
    server.lock = threading.Lock()
    with open(ready_file + ".tmp", "w") as f:
        json.dump({"url": f"http://127.0.0.1:{server.server_address[1]}", "pid": os.getpid()}, f)
    os.rename(ready_file + ".tmp", ready_file)
    server.serve_forever()


def main():
    cmd = sys.argv[1]
    if cmd == "start":
        directory, key, secret = sys.argv[2:5]
        ready = os.path.join(directory, "query-double.json")
        log = open(os.path.join(directory, "query-double.log"), "wb")
        subprocess.Popen([sys.executable, __file__, "serve", ready, key, secret], stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 20
        while not os.path.exists(ready):
            if time.time() > deadline:
                sys.exit("query double did not start")
            time.sleep(0.05)
        print(open(ready).read())
    elif cmd == "serve":
        serve(*sys.argv[2:5])
    elif cmd == "stop":
        try:
            os.killpg(int(sys.argv[2]), signal.SIGTERM)
        except ProcessLookupError:
            pass


if __name__ == "__main__":
    main()
