#!/usr/bin/env python3
"""A fake PagerDuty REST API v2 for pager-tester's tests (plain HTTP, 127.0.0.1).

Usage: fake_pagerduty.py --token T --from EMAIL --service ID
Prints the port on the first line of stdout, then serves until killed.

It checks every request's v2 headers (Accept, Authorization, From,
Content-Type) and the incident body, answering 400 with PagerDuty's error
shape when something is wrong, and records every request.

Control (JSON over POST /_control):
  {"script": [{"status": 429, "headers": {...}, "body": {...}, "delay": 2.5,
               "path": "/incidents"}, ...]}
      queued answers: the next request whose path starts with "path" (any
      when absent) gets the first matching item instead of the normal answer;
      "delay" only (no "status") sleeps and then answers normally.
  {"behavior": {"PUSER": "notify" | "ack" | "none"}}
      what the incident log shows for incidents assigned to that user.
  {"emails": {"PUSER": "x@example.com"}}   emails for GET /users/{id}
GET /_requests returns the recorded requests.
"""
import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"script": [], "behavior": {}, "emails": {}, "incidents": {}, "requests": [], "next": 1}
ARGS = None


def pd_error(status, message, errors):
    return status, {"error": {"message": message, "code": 2001, "errors": errors}}, {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=None):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self, method):
        raw = self.read_body()
        path = self.path
        if path == "/_control" and method == "POST":
            cmd = json.loads(raw)
            with LOCK:
                STATE["script"] += cmd.get("script", [])
                STATE["behavior"].update(cmd.get("behavior", {}))
                STATE["emails"].update(cmd.get("emails", {}))
            return self.reply(200, {"ok": True})
        if path == "/_requests":
            with LOCK:
                return self.reply(200, STATE["requests"])
        with LOCK:
            STATE["requests"].append({"method": method, "path": path, "time": time.time(),
                                      "headers": {k.lower(): v for k, v in self.headers.items()},
                                      "body": raw.decode("utf-8", "replace")})
            item = None
            for i, s in enumerate(STATE["script"]):
                if path.startswith(s.get("path", "")):
                    item = STATE["script"].pop(i)
                    break
        if item is not None:
            if item.get("delay"):
                time.sleep(item["delay"])
            if "status" in item:
                return self.reply(item["status"], item.get("body", {"error": {"message": "scripted", "code": 2020}}),
                                  item.get("headers"))
        status, body, headers = self.answer(method, path, raw)
        self.reply(status, body, headers)

    def check_headers(self, with_body):
        errors = []
        if self.headers.get("Accept") != "application/vnd.pagerduty+json;version=2":
            errors.append("Accept must be application/vnd.pagerduty+json;version=2")
        if self.headers.get("Authorization") != "Token token=" + ARGS.token:
            errors.append("Authorization must be 'Token token=<key>'")
        if self.headers.get("From") != ARGS.from_email:
            errors.append("From must be the requester's email")
        if with_body and self.headers.get("Content-Type") != "application/json":
            errors.append("Content-Type must be application/json")
        return errors

    def answer(self, method, path, raw):
        parts = path.split("?")[0].strip("/").split("/")
        errors = self.check_headers(method in ("POST", "PUT"))
        if errors:
            if any(e.startswith("Authorization") for e in errors):
                return 401, {"error": {"message": "Unauthorized", "code": 2006, "errors": errors}}, {}
            return pd_error(400, "Invalid Input Provided", errors)
        if method == "POST" and parts == ["incidents"]:
            try:
                body = json.loads(raw)
                inc = body["incident"]
                assert inc["type"] == "incident", "incident.type must be incident"
                assert isinstance(inc["title"], str) and inc["title"], "incident.title is required"
                assert inc["service"] == {"id": ARGS.service, "type": "service_reference"}, "incident.service is wrong"
                a = inc["assignments"]
                assert len(a) == 1 and a[0]["assignee"]["type"] == "user_reference", "one user_reference assignee"
                user = a[0]["assignee"]["id"]
                assert user, "assignee id is required"
            except (ValueError, KeyError, TypeError, AssertionError) as e:
                return pd_error(400, "Invalid Input Provided", [str(e)])
            with LOCK:
                n = STATE["next"]
                STATE["next"] += 1
                iid = "Q%04d" % n
                behavior = STATE["behavior"].get(user, "notify")
                STATE["incidents"][iid] = {"id": iid, "incident_number": n, "user": user,
                                           "status": "acknowledged" if behavior == "ack" else "triggered",
                                           "behavior": behavior}
            return 201, {"incident": {"id": iid, "type": "incident", "incident_number": n, "status": "triggered",
                                      "title": inc["title"]}}, {}
        if len(parts) >= 2 and parts[0] == "incidents":
            with LOCK:
                inc = STATE["incidents"].get(parts[1])
            if inc is None:
                return 404, {"error": {"message": "Not Found", "code": 2100}}, {}
            if method == "GET" and len(parts) == 2:
                return 200, {"incident": {"id": inc["id"], "status": inc["status"]}}, {}
            if method == "PUT" and len(parts) == 2:
                body = json.loads(raw or b"{}")
                if body != {"incident": {"type": "incident_reference", "status": "resolved"}}:
                    return pd_error(400, "Invalid Input Provided", ["expected a resolve body"])
                with LOCK:
                    inc["status"] = "resolved"
                return 200, {"incident": {"id": inc["id"], "status": "resolved"}}, {}
            if method == "GET" and parts[2:] == ["log_entries"]:
                if "include%5B%5D=channels" not in path and "include[]=channels" not in path:
                    return pd_error(400, "Invalid Input Provided", ["include[]=channels expected"])
                entries = [{"type": "trigger_log_entry", "created_at": "2026-01-01T00:00:00Z"}]
                if inc["behavior"] in ("notify", "ack"):
                    entries.append({"type": "notify_log_entry", "user": {"id": inc["user"], "type": "user_reference"},
                                    "channel": {"type": "notification", "notification": {
                                        "type": "sms_notification", "status": "success",
                                        "address": "+15555550100", "started_at": "2026-01-01T00:00:05Z"}}})
                if inc["behavior"] == "ack":
                    entries.append({"type": "acknowledge_log_entry", "agent": {"id": inc["user"]}})
                return 200, {"log_entries": entries}, {}
        if method == "GET" and len(parts) == 2 and parts[0] == "users":
            with LOCK:
                email = STATE["emails"].get(parts[1], parts[1].lower() + "@example.com")
            return 200, {"user": {"id": parts[1], "email": email}}, {}
        return 404, {"error": {"message": "Not Found", "code": 2100}}, {}

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")


def main():
    global ARGS
    # The test runner may start us with signals blocked; let SIGTERM work.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    p = argparse.ArgumentParser()
    p.add_argument("--token", required=True)
    p.add_argument("--from", dest="from_email", required=True)
    p.add_argument("--service", required=True)
    ARGS = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
