"""A deliberately broken Kubernetes API server for kube-leader's hostile tests.

Plain HTTP on 127.0.0.1 (kube-leader accepts http:// API servers). It serves
one lock object (a ConfigMap or a Lease) in one namespace with the real
semantics where the mode leaves them alone (resourceVersion, 409 on a stale
update, no-op updates that keep the resourceVersion and send no event, a
bounded watch history with 410 Expired), and misbehaves in one way per MODE
(see MODES below and docs/hostile-server.md).

It knows who holds the lock: every applied write is recorded, so the runner
can tell whether kube-leader's child ever ran without kube-leader holding the
lock. GET /_hostile/report returns the request log and that record.

Usage: python3 hostile_server.py --mode MODE --kind configmap|lease
       [--namespace NS] [--name LOCK] [--identity ID] [--token TOKEN]
Prints one JSON line {"url": ...} when ready. Standard library only.
"""
import argparse
import json
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
INT64_MAX = 9223372036854775807

# mode -> one-line description (docs/hostile-server.md has what each asserts).
MODES = {
    "normal": "a well-behaved server",
    # records held by another replica that renews every second
    "record-transitions-huge": "leaderTransitions of 10**30 (beyond Int64)",
    "record-transitions-int64-overflow": "leaderTransitions of Int64 max + 1",
    "record-lease-9223372036": "leaseDurationSeconds 9223372036 (seconds * 1e9 overflows Int64)",
    "record-lease-9300000000": "leaseDurationSeconds 9300000000",
    "record-lease-int64-max": "leaseDurationSeconds Int64 max",
    "record-lease-huge-string": "leaseDurationSeconds as a string of 200 digits",
    "record-lease-zero": "leaseDurationSeconds 0",
    "record-lease-negative": "leaseDurationSeconds -5",
    "record-holder-not-string": "holderIdentity is a number",
    "record-not-json": "the ConfigMap annotation is not JSON",
    "annotation-not-string": "the ConfigMap annotation is a JSON object, not a string",
    "lease-spec-not-object": "the Lease's spec is a string",
    "lease-spec-array": "the Lease's spec is an array",
    # bodies
    "body-not-json": "GET answers 200 with an HTML page",
    "body-truncated": "GET answers 200 with truncated JSON",
    "body-array": "GET answers 200 with a JSON array",
    # error codes forever
    "get-500": "GET answers 500 forever",
    "get-404-create-409": "GET says absent, create says AlreadyExists, forever",
    "create-404": "GET says absent, create answers 404 (namespace not found) forever",
    "create-500": "GET says absent, create answers 500 forever",
    "update-409": "a released lock; every update answers 409 Conflict",
    "update-404": "a released lock; every update answers 404",
    "update-500": "a released lock; every update answers 500",
    "renew-409": "kube-leader acquires; after 2.5 s every renew answers 409",
    "renew-404": "kube-leader acquires; after 2.5 s every renew answers 404",
    "renew-500": "kube-leader acquires; after 2.5 s every renew answers 500",
    "renew-403": "kube-leader acquires; after 2.5 s every renew answers 403 Forbidden",
    # dead connections and outages (issue 20, rows 4 and 5)
    "silent-keepalive": "kube-leader acquires; after 2.5 s the kept-alive connection of the next request goes silent "
                        "(no answer, no FIN, not applied) while new connections are answered",
    "authz-outage": "held by another (lease 2 s) while reads work; then for 3.5 s every request is answered 403 "
                    "(the second 401) and open watches end; then the holder stops and kube-leader may acquire; after "
                    "2.5 s as leader its next renew is answered 403",
    "watch-silent": "held by another (lease 3600 s, renewing every second); every watch answers its headers and then "
                    "nothing (no events, no bookmarks); after 3 s the holder releases the lock",
    # watch streams (the lock is held by another replica that renews)
    "watch-blank-lines": "watches stream blank lines without end",
    "watch-unknown-type": "watches stream events of an unknown type without end",
    "watch-410": "every watch answers an ERROR 410 Expired event and ends",
    "watch-http-410": "every watch answers HTTP 410",
    "watch-200-empty": "every watch answers 200 with an empty body",
    "watch-deleted-no-metadata": "every watch sends DELETED events with an object without metadata",
    "watch-other-objects": "watches stream MODIFIED events for other objects without end",
    "watch-line-never-ends": "every watch streams one line that never ends",
    # a watch still being opened when the standby's deadline comes
    "watch-open-late": "a holder that died (lease 5 s); the first watch ends with 410 after 3.5 s, later watches never answer, "
                       "reads after the first take 300 ms, updates answer 500",
    "read-retry-watch": "a holder that died (lease 30 s); the first read answers 500, the second 500 after 300 ms, later ones "
                        "take 300 ms; the first watch never answers, later ones send their first event after 500 ms",
    # slow and endless bodies
    "renew-trickle": "kube-leader acquires; after 2.5 s renews are answered in 1-byte writes, as fast as they go, and not applied",
    "renew-endless": "kube-leader acquires; after 2.5 s renews are answered with an endless body, as fast as it goes, and not applied",
    "get-trickle": "held by another; GET bodies come 1 byte per 50 ms",
    "get-endless": "held by another; GET bodies never end (as fast as they go)",
    # lies
    "create-other-holder": "create is answered 201 with a record naming another holder, who then renews it every second",
    # name resolution (with --dns: the runner points kube-leader's resolv.conf at us)
    "dns-down": "kube-leader reaches the server by name; after 2.5 s as leader, DNS stops answering and every response closes its connection",
    # configuration (the runner sets the token file or flags)
    "token-crlf": "a normal server that requires the exact token (the token file ends in CRLF)",
}

HELD_BY_OTHER = {m for m in MODES if m.startswith(("record-", "annotation-", "lease-spec-", "watch-", "body-", "get-trickle",
                                                   "get-endless", "get-500"))
                 and m not in ("watch-open-late", "read-retry-watch")}


def now_micro():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


class State:
    def __init__(self, args):
        self.args = args
        self.mode = args.mode
        self.kind = args.kind
        self.lock = threading.Condition()
        self.rv = 100
        self.obj = None
        self.history = []  # (rv, type, obj), bounded like the watch cache
        self.requests = []  # (monotonic time, verb, status)
        self.kl_holder_since = None
        self.kl_last_applied = None
        self.kl_acquires = 0
        self.bad_auth = 0
        self.injected = []
        self.other_renews = 0
        self.other_started = False
        self.dns_queries = 0
        self.dns_dropped = 0
        self.stopping = False
        self.watches = 0
        self.reads = 0
        self.first_request = None   # monotonic time of kube-leader's first request
        self.silenced = None        # silent-keepalive: when a connection went silent
        self.after_silence_bytes = 0
        self.outage_answers = 0     # authz-outage: requests answered 401/403 in the outage
        self.leader_denied = 0      # authz-outage: renews answered 403 while leading
        self.released_at = None     # watch-silent: when the holder released

    # -- timed phases (from kube-leader's first request) ---------------
    def since_first(self):
        return None if self.first_request is None else time.monotonic() - self.first_request

    def outage(self):
        """authz-outage: inside the 3.5 s outage window (2.5 s to 6 s)."""
        t = self.since_first()
        return self.mode == "authz-outage" and t is not None and 2.5 <= t < 6.0

    def other_stops(self):
        """When the other holder stops renewing (authz-outage: at the outage's
        end) or releases (watch-silent: 3 s in)."""
        t = self.since_first()
        if self.mode == "authz-outage":
            return t is not None and t >= 6.0
        if self.mode == "watch-silent":
            return t is not None and t >= 3.0
        return False

    # -- object shapes -------------------------------------------------
    def record(self, holder, lease=5, transitions=0):
        t = now_micro()
        return {"holderIdentity": holder, "leaseDurationSeconds": lease, "acquireTime": t, "renewTime": t,
                "leaderTransitions": transitions}

    def make_object(self, rec, raw_spec=None, raw_annotation=None):
        meta = {"name": self.args.name, "namespace": self.args.namespace, "uid": "hostile-uid",
                "creationTimestamp": "2026-01-01T00:00:00Z"}
        if self.kind == "configmap":
            meta["annotations"] = {ANNOTATION: raw_annotation if raw_annotation is not None else json.dumps(rec)}
            return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}
        spec = raw_spec
        if spec is None:
            spec = {"holderIdentity": rec["holderIdentity"], "leaseDurationSeconds": rec["leaseDurationSeconds"],
                    "acquireTime": rec["acquireTime"], "renewTime": rec["renewTime"],
                    "leaseTransitions": rec["leaderTransitions"]}
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    def other_object(self, n):
        """The lock as held by 'other' at its n-th renew, as the mode wants it."""
        m = self.mode
        rec = self.record("other", lease={"authz-outage": 2, "watch-silent": 3600}.get(m, 5), transitions=3)
        rec["renewTime"] = now_micro()
        raw_spec = raw_annotation = None
        if m == "record-transitions-huge":
            rec["leaderTransitions"] = 10 ** 30
        elif m == "record-transitions-int64-overflow":
            rec["leaderTransitions"] = INT64_MAX + 1
        elif m == "record-lease-9223372036":
            rec["leaseDurationSeconds"] = 9223372036
        elif m == "record-lease-9300000000":
            rec["leaseDurationSeconds"] = 9300000000
        elif m == "record-lease-int64-max":
            rec["leaseDurationSeconds"] = INT64_MAX
        elif m == "record-lease-huge-string":
            rec["leaseDurationSeconds"] = "9" * 200
        elif m == "record-lease-zero":
            rec["leaseDurationSeconds"] = 0
        elif m == "record-lease-negative":
            rec["leaseDurationSeconds"] = -5
        elif m == "record-holder-not-string":
            rec["holderIdentity"] = 12345
        elif m == "record-not-json":
            raw_annotation = '{"holderIdentity": "other", renewTime=%d' % n
        elif m == "annotation-not-string":
            raw_annotation = dict(rec)
        elif m == "lease-spec-not-object":
            raw_spec = "held by other, renew %d" % n
        elif m == "lease-spec-array":
            raw_spec = [rec["holderIdentity"], n]
        return self.make_object(rec, raw_spec=raw_spec, raw_annotation=raw_annotation)

    # -- store ---------------------------------------------------------
    def store(self, obj, event):
        """Stores obj (or deletes when None) with a new resourceVersion; caller holds the lock."""
        self.rv += 1
        if obj is not None:
            obj = json.loads(json.dumps(obj))
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
            self.obj = obj
        else:
            gone = self.obj
            gone["metadata"]["resourceVersion"] = str(self.rv)
            self.obj = None
            obj = gone
        self.history.append((self.rv, event, obj))
        del self.history[:-50]
        self.lock.notify_all()
        return obj

    def holder_of(self, obj):
        try:
            if self.kind == "configmap":
                return json.loads(obj["metadata"]["annotations"][ANNOTATION]).get("holderIdentity")
            return obj["spec"].get("holderIdentity")
        except Exception:
            return None

    def note_write(self, obj, by_kl_body):
        """Bookkeeping of who holds the lock after an applied write."""
        t = time.monotonic()
        holder = self.holder_of(obj) if obj is not None else None
        if holder == self.args.identity:
            if self.kl_holder_since is None:
                self.kl_holder_since = t
                self.kl_acquires += 1
            self.kl_last_applied = t
        else:
            self.kl_holder_since = None

    def armed(self):
        """Phase 2 of the renew-* modes: kube-leader has held the lock 2.5 s."""
        return self.kl_holder_since is not None and time.monotonic() - self.kl_holder_since >= 2.5

    def report(self):
        return {"mode": self.mode, "kind": self.kind, "requests": self.requests,
                "kl_holder_since": self.kl_holder_since, "kl_last_applied": self.kl_last_applied,
                "kl_acquires": self.kl_acquires, "bad_auth": self.bad_auth, "injected": self.injected,
                "other_renews": self.other_renews, "dns_queries": self.dns_queries, "dns_dropped": self.dns_dropped,
                "holder": self.holder_of(self.obj) if self.obj else None,
                "silenced": self.silenced, "after_silence_bytes": self.after_silence_bytes,
                "outage_answers": self.outage_answers, "leader_denied": self.leader_denied,
                "released_at": self.released_at}


def other_holder(state):
    """Another replica holding the lock and renewing every second (until the
    mode makes it stop: it dies, or releases the lock)."""
    n = 0
    while not state.stopping:
        with state.lock:
            if state.other_stops():
                if state.mode == "watch-silent":
                    rec = state.record("", lease=1, transitions=3)  # a release, as client-go writes it
                    state.store(state.make_object(rec), "MODIFIED")
                    state.released_at = time.monotonic()
                return
            state.store(state.other_object(n), "ADDED" if state.obj is None else "MODIFIED")
            state.other_renews += 1
        n += 1
        time.sleep(1.0)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hostile"

    def log_message(self, *a):
        pass

    @property
    def st(self):
        return self.server.state

    # -- responses -----------------------------------------------------
    def send_json(self, code, obj, close=False):
        body = json.dumps(obj).encode()
        self.send_raw(code, body, "application/json", close)

    def send_raw(self, code, body, ctype="application/json", close=False):
        close = close or self.st.mode == "dns-down"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def send_status(self, code, reason, message):
        self.send_json(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code})

    def trickle(self, code, body, pause=0.05):
        """A body one byte per `pause`, with a Content-Length far beyond it."""
        self.close_connection = True
        try:
            self.wfile.write(("HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                              % (code, len(body) * 1000)).encode())
            self.wfile.flush()
            while not self.st.stopping:
                for b in body:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    if pause:
                        time.sleep(pause)
        except OSError:
            pass

    def endless(self, code, piece, pause=0.002):
        """A chunked body that never ends."""
        self.close_connection = True
        try:
            self.wfile.write(("HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                              % code).encode())
            chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
            while not self.st.stopping:
                self.wfile.write(chunk)
                self.wfile.flush()
                if pause:
                    time.sleep(pause)
        except OSError:
            pass

    # -- request parsing -------------------------------------------------
    def route(self):
        """(verb, collection?, name) for the lock's paths; None otherwise."""
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        ns = self.st.args.namespace
        base = ("/api/v1/namespaces/%s/configmaps" % ns if self.st.kind == "configmap"
                else "/apis/coordination.k8s.io/v1/namespaces/%s/leases" % ns)
        if u.path == base:
            return q, None
        if u.path.startswith(base + "/"):
            return q, u.path[len(base) + 1:]
        return q, False

    def body_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def go_silent(self):
        """silent-keepalive: read the request's body, never answer, keep the
        connection open; count what kube-leader still sends on it (nothing
        may come: a timed-out connection is never reused)."""
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        self.close_connection = True
        self.connection.settimeout(0.2)
        while not self.st.stopping:
            try:
                data = self.connection.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return  # kube-leader closed it
            with self.st.lock:
                self.st.after_silence_bytes += len(data)

    def check_request(self, verb):
        st = self.st
        served = getattr(self, "served", 0)  # earlier requests on this connection
        self.served = served + 1
        with st.lock:
            st.requests.append((time.monotonic(), verb))
            if st.first_request is None:
                st.first_request = time.monotonic()
            silence = (st.mode == "silent-keepalive" and verb == "update" and st.armed() and st.silenced is None
                       and served >= 1)
            if silence:
                st.silenced = time.monotonic()
            deny = None
            if st.outage():
                st.outage_answers += 1
                deny = 401 if st.outage_answers == 2 else 403
            elif st.mode == "authz-outage" and verb == "update" and st.armed() and st.leader_denied == 0:
                st.leader_denied += 1
                deny = 403
        if silence:
            self.go_silent()
            return False
        if deny is not None:
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)  # the request's body, so the connection stays usable
        if deny == 401:
            self.send_status(401, "Unauthorized", "Unauthorized")
            return False
        if deny == 403:
            res = "configmaps" if st.kind == "configmap" else "leases.coordination.k8s.io"
            self.send_status(403, "Forbidden", '%s "%s" is forbidden: User "system:serviceaccount:hostile:kl" cannot %s '
                             'resource in the namespace "%s": authorizer webhook timed out'
                             % (res, st.args.name, verb, st.args.namespace))
            return False
        auth = self.headers.get("Authorization")
        if st.args.token and auth != "Bearer " + st.args.token:
            st.bad_auth += 1
            self.send_status(401, "Unauthorized", "Unauthorized")
            return False
        # Header injection shows as a request line inside a header value or
        # as an extra request on the connection (the token-injected case's
        # token file carries "GET /injected HTTP/1.1").
        for k, v in self.headers.items():
            if "\r" in v or "HTTP/1." in v:
                st.injected.append("%s: %r" % (k, v))
        if "/injected" in self.path:
            st.injected.append(self.requestline)
        return True

    # -- verbs -------------------------------------------------------------
    def do_GET(self):
        if self.path == "/_hostile/report":
            with self.st.lock:
                self.send_json(200, self.st.report(), close=True)
            return
        q, name = self.route()
        watch = q.get("watch") in ("1", "true")
        verb = "watch" if watch else ("get" if name else "list")
        if not self.check_request(verb):
            return
        if name is False:
            self.send_status(404, "NotFound", "the server could not find the requested resource")
            return
        if watch:
            self.watch(q)
            return
        st, m = self.st, self.st.mode
        if m in ("watch-open-late", "read-retry-watch"):
            with st.lock:
                st.reads += 1
                n = st.reads
            if n > 1:
                time.sleep(0.3)
            if m == "read-retry-watch" and n in (1, 2):
                self.send_status(500, "InternalError", "etcdserver: request timed out")
                return
        if m == "get-500":
            self.send_status(500, "InternalError", "etcdserver: request timed out")
            return
        if m == "body-not-json":
            self.send_raw(200, b"<html><body>Welcome to nginx!</body></html>", "text/html")
            return
        if m == "body-truncated":
            self.send_raw(200, b'{"kind":"ConfigMap","metadata":{"name":"lock","resourceVersion":"1"')
            return
        if m == "body-array":
            self.send_raw(200, b'[1,2,3]')
            return
        with st.lock:
            obj = st.obj
            rv = st.rv
        if m == "get-trickle" and obj is not None:
            self.trickle(200, json.dumps(obj).encode())
            return
        if m == "get-endless":
            self.endless(200, b'{"kind":"ConfigMap","metadata":' * 2048, pause=0)
            return
        if name:
            if name != st.args.name or obj is None:
                self.send_status(404, "NotFound", '%s "%s" not found' % (st.kind, name))
            else:
                self.send_json(200, obj)
            return
        items = [obj] if obj is not None and q.get("fieldSelector", "metadata.name=" + st.args.name) in (
            "metadata.name=" + st.args.name, "") else []
        self.send_json(200, {"kind": "ConfigMapList" if st.kind == "configmap" else "LeaseList",
                             "apiVersion": "v1", "metadata": {"resourceVersion": str(rv)}, "items": items})

    def watch(self, q):
        st, m = self.st, self.st.mode
        if m in ("watch-open-late", "read-retry-watch"):
            with st.lock:
                st.watches += 1
                n = st.watches
            if (n == 1 and m == "read-retry-watch") or (n > 1 and m == "watch-open-late"):  # never answered
                end = time.monotonic() + 30
                while not st.stopping and time.monotonic() < end:
                    time.sleep(0.05)
                self.close_connection = True
                return
        if m == "watch-silent":
            # Headers, then nothing at all until the server stops (or the
            # client closes): no events, no bookmarks, no end.
            self.close_connection = True
            try:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                self.wfile.flush()
                self.connection.settimeout(0.2)
                while not st.stopping:
                    try:
                        if not self.connection.recv(1024):
                            return
                    except socket.timeout:
                        continue
            except OSError:
                pass
            return
        if m == "watch-http-410":
            self.send_status(410, "Expired", "too old resource version")
            return
        if m == "watch-200-empty":
            self.send_raw(200, b"")
            return
        self.close_connection = True
        try:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            self.wfile.flush()

            def chunk(data):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def event(t, obj):
                chunk(json.dumps({"type": t, "object": obj}).encode() + b"\n")

            first = m == "watch-open-late" and st.watches == 1
            if first:
                time.sleep(3.5)
            if m == "read-retry-watch":
                time.sleep(0.5)  # the initial ADDED event comes late (a slow watch cache)
            if m == "watch-410" or first:
                event("ERROR", {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
                                "reason": "Expired", "message": "too old resource version"})
                chunk(b"")
                return
            junk = {"watch-blank-lines": b"\n" * 4096,
                    "watch-unknown-type": b'{"type":"WEIRD","object":{"kind":"Nothing"}}\n' * 64,
                    "watch-other-objects": (json.dumps({"type": "MODIFIED", "object": {
                        "kind": "ConfigMap", "metadata": {"name": "someone-else", "resourceVersion": "7"}}}) + "\n").encode() * 32,
                    "watch-deleted-no-metadata": b'{"type":"DELETED","object":{"kind":"Status"}}\n' * 8,
                    }.get(m)
            if m == "watch-line-never-ends":
                chunk(b'{"type":"MODIFIED","object":{"metadata":{"name":"')
                while not st.stopping:  # 2.6 MB/s: the 4 MiB line cap in under 2 s
                    chunk(b"a" * 65536)
                    time.sleep(0.025)
                return
            if junk is not None:
                while not st.stopping:
                    chunk(junk)
                    time.sleep(0.005 if m != "watch-deleted-no-metadata" else 0.2)
                return
            # Real semantics: events after `resourceVersion`, 410 when it is
            # older than the bounded history, timeoutSeconds honoured.
            since = q.get("resourceVersion") or ""
            deadline = time.monotonic() + min(float(q.get("timeoutSeconds") or 300), 300)
            with st.lock:
                if since in ("", "0"):
                    if st.obj is not None:
                        event("ADDED", st.obj)
                    last = st.rv
                else:
                    try:
                        last = int(since)
                    except ValueError:
                        last = -1
                    oldest = st.history[0][0] if st.history else st.rv + 1
                    if last < oldest - 1 and last < st.rv:
                        event("ERROR", {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
                                        "reason": "Expired", "message": "too old resource version: %s" % since})
                        chunk(b"")
                        return
                while not st.stopping and time.monotonic() < deadline:
                    if st.outage():
                        break  # an API server restart ends every watch
                    pending = [(rv, t, o) for rv, t, o in st.history if rv > last]
                    for rv, t, o in pending:
                        event(t, o)
                        last = rv
                    if not pending:
                        st.lock.wait(0.5)
            chunk(b"")
        except OSError:
            pass

    def do_POST(self):
        if not self.check_request("create"):
            return
        q, name = self.route()
        body = self.body_json()
        st, m = self.st, self.st.mode
        if name is False:  # not a path of ours (a wrong path prefix): what the API server says
            self.send_status(404, "NotFound", "the server could not find the requested resource")
            return
        if name is not None or body is None:
            self.send_status(400, "BadRequest", "bad create")
            return
        if m == "create-404":
            self.send_status(404, "NotFound", 'namespaces "%s" not found' % st.args.namespace)
            return
        if m == "create-500":
            self.send_status(500, "InternalError", "etcdserver: leader changed")
            return
        if m == "get-404-create-409":
            self.send_status(409, "AlreadyExists", '%s "%s" already exists' % (st.kind, st.args.name))
            return
        with st.lock:
            if m == "create-other-holder" and not st.other_started:
                # The create "succeeds" but the stored record names another
                # holder, which from then on renews it every second.
                obj = st.store(st.other_object(0), "ADDED")
                st.note_write(obj, False)
                st.other_started = True
                threading.Thread(target=other_holder, args=(st,), daemon=True).start()
                self.send_json(201, obj)
                return
            if st.obj is not None:
                self.send_status(409, "AlreadyExists", '%s "%s" already exists' % (st.kind, st.args.name))
                return
            obj = st.store(body, "ADDED")
            st.note_write(obj, True)
            self.send_json(201, obj)

    def do_PUT(self):
        if not self.check_request("update"):
            return
        q, name = self.route()
        body = self.body_json()
        st, m = self.st, self.st.mode
        if name is False:
            self.send_status(404, "NotFound", "the server could not find the requested resource")
            return
        if not name or body is None:
            self.send_status(400, "BadRequest", "bad update")
            return
        if m in ("update-409", "renew-409") and (m == "update-409" or st.armed()):
            self.send_status(409, "Conflict", "Operation cannot be fulfilled: the object has been modified")
            return
        if m == "renew-403" and st.armed():
            self.send_status(403, "Forbidden", 'the service account may not update %s "%s"' % (st.kind, name))
            return
        if m in ("update-404", "renew-404") and (m == "update-404" or st.armed()):
            self.send_status(404, "NotFound", '%s "%s" not found' % (st.kind, name))
            return
        if m in ("update-500", "renew-500", "watch-open-late") and (m != "renew-500" or st.armed()):
            self.send_status(500, "InternalError", "etcdserver: request timed out")
            return
        if m == "renew-trickle" and st.armed():
            self.trickle(200, json.dumps(body).encode(), pause=0)  # 1-byte writes, faster than they are read
            return
        if m == "renew-endless" and st.armed():
            self.endless(200, json.dumps(body).encode() * 16, pause=0)
            return
        with st.lock:
            if st.obj is None:
                self.send_status(404, "NotFound", '%s "%s" not found' % (st.kind, name))
                return
            if body.get("metadata", {}).get("resourceVersion") != st.obj["metadata"]["resourceVersion"]:
                self.send_status(409, "Conflict", "Operation cannot be fulfilled: the object has been modified")
                return
            same = dict(body)
            cur = dict(st.obj)
            same.pop("metadata", None)
            cur.pop("metadata", None)
            if same == cur and body.get("metadata", {}).get("annotations") == st.obj["metadata"].get("annotations"):
                obj = st.obj  # a no-op update keeps the resourceVersion and sends no event
            else:
                obj = st.store(body, "MODIFIED")
            st.note_write(obj, True)
            self.send_json(200, obj)

    def do_DELETE(self):
        if not self.check_request("delete"):
            return
        st = self.st
        with st.lock:
            if st.obj is None:
                self.send_status(404, "NotFound", "not found")
                return
            obj = st.store(None, "DELETED")
            st.note_write(None, True)
            self.send_json(200, obj)


def dns_server(state, ip):
    """A DNS server on ip:53 (UDP): A queries for any name get 127.0.0.1,
    others an empty answer; in mode dns-down it drops every query once
    kube-leader has led for 2.5 s (DNS is down: getaddrinfo blocks for its
    time-outs)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, 53))

    def serve():
        while not state.stopping:
            try:
                q, peer = sock.recvfrom(1500)
            except OSError:
                return
            with state.lock:
                state.dns_queries += 1
                down = state.mode == "dns-down" and state.armed()
                if down:
                    state.dns_dropped += 1
            if down or len(q) < 17:
                continue
            i = 12
            while i < len(q) and q[i] != 0:
                i += q[i] + 1
            qtype = int.from_bytes(q[i + 1:i + 3], "big")
            question = q[12:i + 5]
            answer = b""
            if qtype == 1:
                answer = b"\xc0\x0c" + (1).to_bytes(2, "big") + (1).to_bytes(2, "big") + (0).to_bytes(4, "big") \
                    + (4).to_bytes(2, "big") + bytes([127, 0, 0, 1])
            header = q[:2] + b"\x81\x80" + (1).to_bytes(2, "big") + (1 if answer else 0).to_bytes(2, "big") + b"\x00\x00\x00\x00"
            sock.sendto(header + question + answer, peer)

    threading.Thread(target=serve, daemon=True).start()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def initial_state(st):
    m = st.mode
    if m in HELD_BY_OTHER or m in ("authz-outage", "watch-silent"):
        threading.Thread(target=other_holder, args=(st,), daemon=True).start()
    elif m in ("watch-open-late", "read-retry-watch"):
        lease = 5 if m == "watch-open-late" else 30
        with st.lock:
            st.store(st.make_object(st.record("gone", lease=lease, transitions=2)), "ADDED")  # never renewed
    elif m in ("update-409", "update-404", "update-500"):
        with st.lock:
            st.store(st.make_object(st.record("", lease=5, transitions=1)), "ADDED")  # released


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", required=True, choices=sorted(MODES))
    p.add_argument("--kind", default="configmap", choices=["configmap", "lease"])
    p.add_argument("--namespace", default="hostile")
    p.add_argument("--name", default="lock")
    p.add_argument("--identity", default="kl-1")
    p.add_argument("--token", default="")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--dns", metavar="IP", help="also serve DNS on IP:53 (UDP; needs root)")
    args = p.parse_args()
    st = State(args)
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.state = st
    initial_state(st)
    if args.dns:
        dns_server(st, args.dns)
    print(json.dumps({"url": "http://127.0.0.1:%d" % srv.server_address[1]}), flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        st.stopping = True


if __name__ == "__main__":
    main()
