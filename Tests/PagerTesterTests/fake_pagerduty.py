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
      "drop": true processes the request normally and then closes the
      connection without an answer (the incident exists, the client never
      learns it: a lost response).
  {"behavior": {"PUSER": BEHAVIOR}}
      what the incident log shows for incidents assigned to that user:
      "notify" (SMS, status success), "ack" (notified, then acknowledged),
      "none" (no notification at all), "sms-failed" (the SMS failed; the
      escalation's secondary was notified successfully, which must not
      count), "phone-no-answer" (call unanswered, SMS failed),
      "mixed" (SMS failed, then the phone call succeeded).
  {"emails": {"PUSER": "x@example.com"}}   emails for GET /users/{id}
  An "X-Fake-Now: EPOCH_SECONDS" request header sets the virtual clock of
  the test (rate limit, created_at, recorded request times).
  Script items may name a "method" too (any when absent).
  {"rate_limit": N}        incident creations allowed per 60 s per service
                           (default 6, 0 = unlimited); beyond: 429 with
                           ratelimit-* headers and error code 2020
GET /_requests returns the recorded requests; GET /_incidents the incidents.

Like PagerDuty, a create whose incident_key matches an open (not resolved)
incident on the same service is refused: 400 {"error": {"message":
"Arguments Caused Error", "code": 2002, "errors": ["Open incident with
matching dedup key already exists on this service"]}}.
"""
import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
STATE = {"script": [], "behavior": {}, "emails": {}, "incidents": {}, "requests": [], "next": 1,
         "now": None, "rate_limit": 6, "creates": []}
SECONDARY = "PSECOND"


def now():
    return STATE["now"] if STATE["now"] is not None else time.time()


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def user_ref(uid, name=None):
    return {"id": uid, "type": "user_reference", "summary": name or uid,
            "self": "https://api.pagerduty.com/users/" + uid,
            "html_url": "https://acme.pagerduty.com/users/" + uid}


def notify_entry(n, inc, uid, ntype, status, address, delay):
    kind = {"sms_notification": "SMS", "phone_notification": "phone", "email_notification": "email",
            "push_notification": "push"}.get(ntype, ntype)
    return {"id": "L%s%02d" % (inc["id"], n), "type": "notify_log_entry",
            "summary": "Notified %s by %s" % (uid, kind),
            "self": "https://api.pagerduty.com/log_entries/L%s%02d" % (inc["id"], n), "html_url": None,
            "created_at": iso(inc["created_at"] + delay),
            "channel": {"type": "auto", "notification": {"type": ntype, "address": address, "status": status,
                                                          "started_at": iso(inc["created_at"] + delay)}},
            "service": {"id": ARGS.service, "type": "service_reference"},
            "incident": {"id": inc["id"], "type": "incident_reference"},
            "teams": [], "contexts": [], "user": user_ref(uid)}


def log_entries(inc):
    uid = inc["user"]
    b = inc["behavior"]
    entries = [{"id": "L%s00" % inc["id"], "type": "trigger_log_entry", "summary": "Triggered through the API",
                "created_at": iso(inc["created_at"]), "channel": {"type": "api"},
                "agent": {"id": "PBOT", "type": "user_reference"}},
               {"id": "L%s01" % inc["id"], "type": "assign_log_entry", "summary": "Assigned to " + uid,
                "created_at": iso(inc["created_at"]), "channel": {"type": "api"},
                "assignees": [user_ref(uid)]}]
    phone = "+15555550100"
    if b in ("notify", "ack"):
        entries.append(notify_entry(2, inc, uid, "sms_notification", "success", phone, 5))
    if b == "sms-failed":
        entries.append(notify_entry(2, inc, uid, "sms_notification", "failed", phone, 5))
        entries.append({"id": "L%s03" % inc["id"], "type": "escalate_log_entry", "summary": "Escalated by timeout",
                        "created_at": iso(inc["created_at"] + 60), "channel": {"type": "timeout"},
                        "assignees": [user_ref(SECONDARY)]})
        entries.append(notify_entry(4, inc, SECONDARY, "phone_notification", "success", "+15555550199", 65))
    if b == "phone-no-answer":
        entries.append(notify_entry(2, inc, uid, "phone_notification", "no_answer", phone, 5))
        entries.append(notify_entry(3, inc, uid, "sms_notification", "failed", phone, 6))
    if b == "mixed":
        entries.append(notify_entry(2, inc, uid, "sms_notification", "failed", phone, 5))
        entries.append(notify_entry(3, inc, uid, "phone_notification", "success", phone, 125))
    if b == "ack":
        entries.append({"id": "L%s09" % inc["id"], "type": "acknowledge_log_entry", "summary": "Acknowledged by " + uid,
                        "created_at": iso(inc["created_at"] + 30), "channel": {"type": "sms"},
                        "agent": user_ref(uid)})
    # PagerDuty lists log entries newest first.
    return list(reversed(entries))


def incident_json(inc):
    return {"id": inc["id"], "type": "incident", "incident_number": inc["incident_number"], "status": inc["status"],
            "title": inc["title"], "urgency": inc["urgency"], "incident_key": inc["incident_key"],
            "created_at": iso(inc["created_at"]),
            "service": {"id": ARGS.service, "type": "service_reference"},
            "assignments": [{"assignee": user_ref(inc["user"])}]}
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
                if "now" in cmd:
                    STATE["now"] = cmd["now"]
                if "rate_limit" in cmd:
                    STATE["rate_limit"] = cmd["rate_limit"]
            return self.reply(200, {"ok": True})
        if path == "/_requests":
            with LOCK:
                return self.reply(200, STATE["requests"])
        if path == "/_incidents":
            with LOCK:
                return self.reply(200, [incident_json(i) for i in STATE["incidents"].values()])
        with LOCK:
            if self.headers.get("X-Fake-Now"):
                STATE["now"] = float(self.headers["X-Fake-Now"])
            STATE["requests"].append({"method": method, "path": path, "time": now(),
                                      "headers": {k.lower(): v for k, v in self.headers.items()},
                                      "body": raw.decode("utf-8", "replace")})
            item = None
            for i, s in enumerate(STATE["script"]):
                if path.startswith(s.get("path", "")) and s.get("method", method) == method:
                    item = STATE["script"].pop(i)
                    break
        if item is not None:
            if item.get("delay"):
                time.sleep(item["delay"])
            if item.get("drop"):
                self.answer(method, path, raw)
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(2)
                return
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
                urgency = inc.get("urgency")
                assert urgency in (None, "high", "low"), "incident.urgency must be high or low"
                key = inc.get("incident_key")
                assert key is None or (isinstance(key, str) and 0 < len(key) <= 255), "incident.incident_key must be a string"
            except (ValueError, KeyError, TypeError, AssertionError) as e:
                return pd_error(400, "Invalid Input Provided", [str(e)])
            with LOCK:
                t = now()
                limit = STATE["rate_limit"]
                recent = [c for c in STATE["creates"] if c > t - 60]
                if limit and len(recent) >= limit:
                    reset = max(1, int(recent[-limit] + 60 - t + 0.999))
                    return 429, {"error": {"message": "Rate Limit Exceeded", "code": 2020}}, {
                        "ratelimit-limit": str(limit), "ratelimit-remaining": "0", "ratelimit-reset": str(reset)}
                if key is not None and any(i["incident_key"] == key and i["status"] != "resolved"
                                           for i in STATE["incidents"].values()):
                    return 400, {"error": {"message": "Arguments Caused Error", "code": 2002,
                                           "errors": ["Open incident with matching dedup key already exists on this service"]}}, {}
                STATE["creates"].append(t)
                n = STATE["next"]
                STATE["next"] += 1
                iid = "Q%04d" % n
                behavior = STATE["behavior"].get(user, "notify")
                STATE["incidents"][iid] = {"id": iid, "incident_number": n, "user": user, "title": inc["title"],
                                           "status": "acknowledged" if behavior == "ack" else "triggered",
                                           "behavior": behavior, "created_at": t,
                                           # Without urgency the service's support hours decide.
                                           "urgency": urgency or "low", "incident_key": key or ("auto-%d" % n)}
                created = incident_json(STATE["incidents"][iid])
                created["status"] = "triggered"
            return 201, {"incident": created}, {}
        if method == "GET" and parts == ["incidents"]:
            query = parse_qs(urlsplit(path).query)
            keys = query.get("incident_key", [])
            if "all" not in query.get("date_range", []):
                return pd_error(400, "Invalid Input Provided", ["expected date_range=all with incident_key"])
            with LOCK:
                found = [incident_json(i) for i in STATE["incidents"].values() if not keys or i["incident_key"] in keys]
            return 200, {"incidents": found, "limit": 25, "offset": 0, "more": False, "total": None}, {}
        if len(parts) >= 2 and parts[0] == "incidents":
            with LOCK:
                inc = STATE["incidents"].get(parts[1])
            if inc is None:
                return 404, {"error": {"message": "Not Found", "code": 2100}}, {}
            if method == "GET" and len(parts) == 2:
                return 200, {"incident": incident_json(inc)}, {}
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
                with LOCK:
                    entries = log_entries(inc)
                return 200, {"log_entries": entries, "limit": 100, "offset": 0, "more": False, "total": None}, {}
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
