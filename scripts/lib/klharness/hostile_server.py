"""A deliberately broken Kubernetes API server for kube-leader's hostile tests.

Plain HTTP on 127.0.0.1 (kube-leader accepts http:// API servers). It serves
one lock object (a ConfigMap or a Lease) in one namespace with the real
semantics where the mode leaves them alone (resourceVersion, 409 on a stale
update, no-op updates that keep the resourceVersion and send no event, a
bounded watch history with 410 Expired), and misbehaves in one way per MODE.

MODES below is the table: each mode is a description and the hooks where it
departs from the real semantics (how the lock starts, the other holder's
record, an answer to a request, a read, a watch, a create or an update). The
handler runs the real semantics and asks the mode's hook first at each of
those points. docs/hostile-server.md has what each case asserts.

It knows who holds the lock: every applied write is recorded, so the runner
can tell whether kube-leader's child ever ran without kube-leader holding the
lock. GET /_hostile/report returns the request log and that record.

Usage: python3 -m klharness.hostile_server --mode MODE --kind configmap|lease
       [--namespace NS] [--name LOCK] [--identity ID] [--token TOKEN]
Prints one JSON line {"url": ...} when ready. Standard library only.
"""
import argparse
import json
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
INT64_MAX = 9223372036854775807
ARMED_AFTER = 2.5   # seconds kube-leader has held the lock before the renew-* faults start
CONFLICT = "Operation cannot be fulfilled: the object has been modified"


def now_micro():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


class Mode:
    """One way of misbehaving: a description and the hooks where it departs
    from the real semantics. Every hook is optional; a request hook returns
    True when it answered the request itself."""

    def __init__(self, doc, start=None, other_lease=5, record=None, other_stops_at=None, other_releases=False,
                 outage=None, on_request=None, on_read=None, on_watch=None, on_create=None, on_update=None,
                 close_connections=False, dns_down=False):
        self.doc = doc
        self.start = start                    # start(state): the lock as kube-leader first finds it
        self.other_lease = other_lease        # leaseDurationSeconds of the other holder's record
        self.record = record                  # record(rec, n) -> {"raw_spec"/"raw_annotation": ...} or None (edits rec)
        self.other_stops_at = other_stops_at  # seconds after kube-leader's first request when the other holder stops
        self.other_releases = other_releases  # ...and writes a release record as it goes
        self.outage = outage                  # (from, to) seconds after the first request: every request denied
        self.on_request = on_request          # (handler, verb, served on this connection before)
        self.on_read = on_read                # (handler, name) for GET and LIST
        self.on_watch = on_watch              # (handler, query)
        self.on_create = on_create            # (handler, None, body)
        self.on_update = on_update            # (handler, name, body)
        self.close_connections = close_connections  # every answer closes its connection
        self.dns_down = dns_down              # the DNS server drops every query once armed


class State:
    def __init__(self, args):
        self.args = args
        self.mode = args.mode
        self.m = MODES[args.mode]
        self.kind = args.kind
        self.lock = threading.Condition()
        self.rv = 100
        self.obj = None
        self.history = []  # (rv, type, obj), bounded like the watch cache
        self.requests = []  # (monotonic time, verb)
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
        """Inside the mode's outage window (authz-outage: 2.5 s to 6 s)."""
        t = self.since_first()
        return self.m.outage is not None and t is not None and self.m.outage[0] <= t < self.m.outage[1]

    def other_stops(self):
        """The other holder stops renewing (authz-outage: at the outage's
        end) or releases (watch-silent: 3 s in)."""
        t = self.since_first()
        return self.m.other_stops_at is not None and t is not None and t >= self.m.other_stops_at

    def armed(self):
        """Phase 2 of the renew-* modes: kube-leader has held the lock 2.5 s."""
        return self.kl_holder_since is not None and time.monotonic() - self.kl_holder_since >= ARMED_AFTER

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
        rec = self.record("other", lease=self.m.other_lease, transitions=3)
        raw = (self.m.record(rec, n) if self.m.record else None) or {}
        return self.make_object(rec, **raw)

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

    def note_write(self, obj):
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
                if state.m.other_releases:
                    rec = state.record("", lease=1, transitions=3)  # a release, as client-go writes it
                    state.store(state.make_object(rec), "MODIFIED")
                    state.released_at = time.monotonic()
                return
            state.store(state.other_object(n), "ADDED" if state.obj is None else "MODIFIED")
            state.other_renews += 1
        n += 1
        time.sleep(1.0)


class Handler(BaseHTTPRequestHandler):
    """The real semantics, with the mode's hook asked first at each point."""
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
        close = close or self.st.m.close_connections
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
        try:
            self.open_stream(code)
            chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
            while not self.st.stopping:
                self.wfile.write(chunk)
                self.wfile.flush()
                if pause:
                    time.sleep(pause)
        except OSError:
            pass

    def open_stream(self, code=200):
        """The head of a chunked answer that ends with the connection."""
        self.close_connection = True
        self.wfile.write(b"HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" % code)
        self.wfile.flush()

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def event(self, t, obj):
        self.chunk(json.dumps({"type": t, "object": obj}).encode() + b"\n")

    def expired(self, message="too old resource version"):
        """An ERROR 410 Expired watch event, then the end of the stream."""
        self.event("ERROR", {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
                             "reason": "Expired", "message": message})
        self.chunk(b"")

    def wait_for_close(self, seconds=None, count=False):
        """Keep the connection open, answer nothing, until the server stops,
        the client closes it or `seconds` pass; count=True: what the client
        still sends on it goes into the report (after_silence_bytes)."""
        self.close_connection = True
        self.connection.settimeout(0.2)
        end = None if seconds is None else time.monotonic() + seconds
        while not self.st.stopping and (end is None or time.monotonic() < end):
            try:
                data = self.connection.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            if count:
                with self.st.lock:
                    self.st.after_silence_bytes += len(data)

    # -- request parsing -------------------------------------------------
    def route(self):
        """(query, name) for the lock's paths: name None for the collection,
        False for a path that is not ours."""
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

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def body_json(self):
        raw = self.read_body()
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def check_request(self, verb):
        """Logs the request, gives the mode's request hook its turn, then the
        token and header-injection checks; False when the request is answered."""
        st = self.st
        served = getattr(self, "served", 0)  # earlier requests on this connection
        self.served = served + 1
        with st.lock:
            st.requests.append((time.monotonic(), verb))
            if st.first_request is None:
                st.first_request = time.monotonic()
        if st.m.on_request and st.m.on_request(self, verb, served):
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

    def not_ours(self):
        self.send_status(404, "NotFound", "the server could not find the requested resource")

    # -- verbs -------------------------------------------------------------
    def do_GET(self):
        if self.path == "/_hostile/report":
            with self.st.lock:
                self.send_json(200, self.st.report(), close=True)
            return
        q, name = self.route()
        watch = q.get("watch") in ("1", "true")
        if not self.check_request("watch" if watch else ("get" if name else "list")):
            return
        if name is False:
            return self.not_ours()
        st = self.st
        if watch:
            try:
                if not (st.m.on_watch and st.m.on_watch(self, q)):
                    self.watch_events(q)
            except OSError:
                pass
            return
        if st.m.on_read and st.m.on_read(self, name):
            return
        with st.lock:
            obj, rv = st.obj, st.rv
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

    def watch_events(self, q, delay=0.0):
        """Real semantics: events after `resourceVersion`, 410 when it is
        older than the bounded history, timeoutSeconds honoured; an outage
        ends every watch. `delay`: the first event comes that late."""
        st = self.st
        self.open_stream()
        if delay:
            time.sleep(delay)
        since = q.get("resourceVersion") or ""
        deadline = time.monotonic() + min(float(q.get("timeoutSeconds") or 300), 300)
        with st.lock:
            if since in ("", "0"):
                if st.obj is not None:
                    self.event("ADDED", st.obj)
                last = st.rv
            else:
                try:
                    last = int(since)
                except ValueError:
                    last = -1
                oldest = st.history[0][0] if st.history else st.rv + 1
                if last < oldest - 1 and last < st.rv:
                    return self.expired("too old resource version: %s" % since)
            while not st.stopping and time.monotonic() < deadline:
                if st.outage():
                    break  # an API server restart ends every watch
                pending = [(rv, t, o) for rv, t, o in st.history if rv > last]
                for rv, t, o in pending:
                    self.event(t, o)
                    last = rv
                if not pending:
                    st.lock.wait(0.5)
        self.chunk(b"")

    def do_POST(self):
        self.write("create", self.st.m.on_create, self.create)

    def do_PUT(self):
        self.write("update", self.st.m.on_update, self.update)

    def write(self, verb, hook, apply):
        """A create or an update: the request hook, the path, the body, then
        the mode's hook for the verb, then the real semantics (`apply`)."""
        if not self.check_request(verb):
            return
        q, name = self.route()
        body = self.body_json()
        if name is False:  # not a path of ours (a wrong path prefix): what the API server says
            return self.not_ours()
        if (name is not None if verb == "create" else not name) or body is None:
            return self.send_status(400, "BadRequest", "bad " + verb)
        if hook and hook(self, name, body):
            return
        apply(name, body)

    def create(self, name, body):
        st = self.st
        with st.lock:
            if st.obj is not None:
                return self.send_status(409, "AlreadyExists", '%s "%s" already exists' % (st.kind, st.args.name))
            obj = st.store(body, "ADDED")
            st.note_write(obj)
            self.send_json(201, obj)

    def update(self, name, body):
        st = self.st
        with st.lock:
            if st.obj is None:
                return self.send_status(404, "NotFound", '%s "%s" not found' % (st.kind, name))
            if body.get("metadata", {}).get("resourceVersion") != st.obj["metadata"]["resourceVersion"]:
                return self.send_status(409, "Conflict", CONFLICT)
            same = dict(body)
            cur = dict(st.obj)
            same.pop("metadata", None)
            cur.pop("metadata", None)
            if same == cur and body.get("metadata", {}).get("annotations") == st.obj["metadata"].get("annotations"):
                obj = st.obj  # a no-op update keeps the resourceVersion and sends no event
            else:
                obj = st.store(body, "MODIFIED")
            st.note_write(obj)
            self.send_json(200, obj)

    def do_DELETE(self):
        if not self.check_request("delete"):
            return
        st = self.st
        with st.lock:
            if st.obj is None:
                return self.send_status(404, "NotFound", "not found")
            obj = st.store(None, "DELETED")
            st.note_write(None)
            self.send_json(200, obj)


# -- how a mode's lock starts ------------------------------------------------

def held_by_other(st):
    """Another replica holds the lock and renews it every second."""
    threading.Thread(target=other_holder, args=(st,), daemon=True).start()


def held_by_the_dead(lease):
    """A record of a holder that died (never renewed), with `lease` seconds."""
    def start(st):
        with st.lock:
            st.store(st.make_object(st.record("gone", lease=lease, transitions=2)), "ADDED")
    return start


def released(st):
    """A released lock (empty holder)."""
    with st.lock:
        st.store(st.make_object(st.record("", lease=5, transitions=1)), "ADDED")


# -- the other holder's record -----------------------------------------------

def field(key, value):
    """The other holder's record with one field set to `value`."""
    def record(rec, n):
        rec[key] = value
    return record


# -- answers -------------------------------------------------------------------

def status(code, reason, message, armed=False):
    """A hook answering with a Status ({kind}, {name}, {ns} filled in); with
    armed=True only once kube-leader has held the lock 2.5 s."""
    def hook(h, *_):
        if armed and not h.st.armed():
            return False
        h.send_status(code, reason, message.format(kind=h.st.kind, name=h.st.args.name, ns=h.st.args.namespace))
        return True
    return hook


ETCD_TIMEOUT = status(500, "InternalError", "etcdserver: request timed out")


def raw(body, ctype="application/json"):
    """A hook answering 200 with this body."""
    def hook(h, *_):
        h.send_raw(200, body, ctype)
        return True
    return hook


def flood(how):
    """Renews answered, once armed, by a body faster than it can be read, not applied."""
    def hook(h, name, body):
        if not h.st.armed():
            return False
        if how == "trickle":
            h.trickle(200, json.dumps(body).encode(), pause=0)  # 1-byte writes, faster than they are read
        else:
            h.endless(200, json.dumps(body).encode() * 16, pause=0)
        return True
    return hook


def trickle_object(h, name):
    with h.st.lock:
        obj = h.st.obj
    if obj is None:
        return False
    h.trickle(200, json.dumps(obj).encode())
    return True


def endless_object(h, name):
    h.endless(200, b'{"kind":"ConfigMap","metadata":' * 2048, pause=0)
    return True


def create_for_other(h, name, body):
    """The create "succeeds" but the stored record names another holder,
    which from then on renews it every second."""
    st = h.st
    with st.lock:
        if st.other_started:
            return False
        obj = st.store(st.other_object(0), "ADDED")
        st.note_write(obj)
        st.other_started = True
    held_by_other(st)
    h.send_json(201, obj)
    return True


def silence_next_renew(h, verb, served):
    """silent-keepalive: once armed, the first renew on a kept-alive
    connection is read and never answered; the connection stays open and
    whatever kube-leader still sends on it is counted (nothing may come: a
    timed-out connection is never reused)."""
    st = h.st
    with st.lock:
        if not (verb == "update" and st.armed() and st.silenced is None and served >= 1):
            return False
        st.silenced = time.monotonic()
    h.read_body()
    h.wait_for_close(count=True)
    return True


def authz_outage(h, verb, served):
    """authz-outage: in the outage every request is denied (the second one
    with 401, the rest 403); once kube-leader leads, its first renew after
    2.5 s is answered 403."""
    st = h.st
    with st.lock:
        deny = None
        if st.outage():
            st.outage_answers += 1
            deny = 401 if st.outage_answers == 2 else 403
        elif verb == "update" and st.armed() and st.leader_denied == 0:
            st.leader_denied += 1
            deny = 403
    if deny is None:
        return False
    h.read_body()  # the request's body, so the connection stays usable
    if deny == 401:
        h.send_status(401, "Unauthorized", "Unauthorized")
    else:
        res = "configmaps" if st.kind == "configmap" else "leases.coordination.k8s.io"
        h.send_status(403, "Forbidden", '%s "%s" is forbidden: User "system:serviceaccount:hostile:kl" cannot %s '
                      'resource in the namespace "%s": authorizer webhook timed out'
                      % (res, st.args.name, verb, st.args.namespace))
    return True


def slow_reads(failures):
    """Reads after the first take 300 ms; the first `failures` answer 500."""
    def hook(h, name):
        with h.st.lock:
            h.st.reads += 1
            n = h.st.reads
        if n > 1:
            time.sleep(0.3)
        if n <= failures:
            return ETCD_TIMEOUT(h)
        return False
    return hook


def count_watch(h):
    with h.st.lock:
        h.st.watches += 1
        return h.st.watches


def open_late(h, q):
    """watch-open-late: the first watch ends with 410 after 3.5 s, later ones never answer."""
    if count_watch(h) > 1:
        h.wait_for_close(30)
        return True
    h.open_stream()
    time.sleep(3.5)
    h.expired()
    return True


def late_first_event(h, q):
    """read-retry-watch: the first watch never answers, later ones send their
    first event after 500 ms (a slow watch cache)."""
    if count_watch(h) == 1:
        h.wait_for_close(30)
        return True
    h.watch_events(q, delay=0.5)
    return True


def silent_watch(h, q):
    """Headers, then nothing at all until the server stops (or the client
    closes): no events, no bookmarks, no end."""
    h.open_stream()
    h.wait_for_close()
    return True


def expired_watch(h, q):
    h.open_stream()
    h.expired()
    return True


def junk(piece, pause=0.005):
    """A watch streaming `piece` without end."""
    def hook(h, q):
        h.open_stream()
        while not h.st.stopping:
            h.chunk(piece)
            time.sleep(pause)
        return True
    return hook


def line_never_ends(h, q):
    """One watch line that never ends, at 2.6 MB/s: the 4 MiB line cap in under 2 s."""
    h.open_stream()
    h.chunk(b'{"type":"MODIFIED","object":{"metadata":{"name":"')
    while not h.st.stopping:
        h.chunk(b"a" * 65536)
        time.sleep(0.025)
    return True


OTHER_OBJECTS = (json.dumps({"type": "MODIFIED", "object": {
    "kind": "ConfigMap", "metadata": {"name": "someone-else", "resourceVersion": "7"}}}) + "\n").encode()

# mode -> what it does (docs/hostile-server.md has what each case asserts).
MODES = {
    "normal": Mode("a well-behaved server"),
    # records held by another replica that renews every second
    "record-transitions-huge": Mode("leaderTransitions of 10**30 (beyond Int64)",
                                    start=held_by_other, record=field("leaderTransitions", 10 ** 30)),
    "record-transitions-int64-overflow": Mode("leaderTransitions of Int64 max + 1",
                                              start=held_by_other, record=field("leaderTransitions", INT64_MAX + 1)),
    "record-lease-9223372036": Mode("leaseDurationSeconds 9223372036 (seconds * 1e9 overflows Int64)",
                                    start=held_by_other, record=field("leaseDurationSeconds", 9223372036)),
    "record-lease-9300000000": Mode("leaseDurationSeconds 9300000000",
                                    start=held_by_other, record=field("leaseDurationSeconds", 9300000000)),
    "record-lease-int64-max": Mode("leaseDurationSeconds Int64 max",
                                   start=held_by_other, record=field("leaseDurationSeconds", INT64_MAX)),
    "record-lease-huge-string": Mode("leaseDurationSeconds as a string of 200 digits",
                                     start=held_by_other, record=field("leaseDurationSeconds", "9" * 200)),
    "record-lease-zero": Mode("leaseDurationSeconds 0", start=held_by_other, record=field("leaseDurationSeconds", 0)),
    "record-lease-negative": Mode("leaseDurationSeconds -5", start=held_by_other, record=field("leaseDurationSeconds", -5)),
    "record-holder-not-string": Mode("holderIdentity is a number", start=held_by_other, record=field("holderIdentity", 12345)),
    "record-not-json": Mode("the ConfigMap annotation is not JSON", start=held_by_other,
                            record=lambda rec, n: {"raw_annotation": '{"holderIdentity": "other", renewTime=%d' % n}),
    "annotation-not-string": Mode("the ConfigMap annotation is a JSON object, not a string", start=held_by_other,
                                  record=lambda rec, n: {"raw_annotation": dict(rec)}),
    "lease-spec-not-object": Mode("the Lease's spec is a string", start=held_by_other,
                                  record=lambda rec, n: {"raw_spec": "held by other, renew %d" % n}),
    "lease-spec-array": Mode("the Lease's spec is an array", start=held_by_other,
                             record=lambda rec, n: {"raw_spec": [rec["holderIdentity"], n]}),
    # bodies
    "body-not-json": Mode("GET answers 200 with an HTML page", start=held_by_other,
                          on_read=raw(b"<html><body>Welcome to nginx!</body></html>", "text/html")),
    "body-truncated": Mode("GET answers 200 with truncated JSON", start=held_by_other,
                           on_read=raw(b'{"kind":"ConfigMap","metadata":{"name":"lock","resourceVersion":"1"')),
    "body-array": Mode("GET answers 200 with a JSON array", start=held_by_other, on_read=raw(b'[1,2,3]')),
    # error codes forever
    "get-500": Mode("GET answers 500 forever", start=held_by_other, on_read=ETCD_TIMEOUT),
    "get-404-create-409": Mode("GET says absent, create says AlreadyExists, forever",
                               on_create=status(409, "AlreadyExists", '{kind} "{name}" already exists')),
    "create-404": Mode("GET says absent, create answers 404 (namespace not found) forever",
                       on_create=status(404, "NotFound", 'namespaces "{ns}" not found')),
    "create-500": Mode("GET says absent, create answers 500 forever",
                       on_create=status(500, "InternalError", "etcdserver: leader changed")),
    "update-409": Mode("a released lock; every update answers 409 Conflict", start=released,
                       on_update=status(409, "Conflict", CONFLICT)),
    "update-404": Mode("a released lock; every update answers 404", start=released,
                       on_update=status(404, "NotFound", '{kind} "{name}" not found')),
    "update-500": Mode("a released lock; every update answers 500", start=released, on_update=ETCD_TIMEOUT),
    "renew-409": Mode("kube-leader acquires; after 2.5 s every renew answers 409",
                      on_update=status(409, "Conflict", CONFLICT, armed=True)),
    "renew-404": Mode("kube-leader acquires; after 2.5 s every renew answers 404",
                      on_update=status(404, "NotFound", '{kind} "{name}" not found', armed=True)),
    "renew-500": Mode("kube-leader acquires; after 2.5 s every renew answers 500",
                      on_update=status(500, "InternalError", "etcdserver: request timed out", armed=True)),
    "renew-403": Mode("kube-leader acquires; after 2.5 s every renew answers 403 Forbidden",
                      on_update=status(403, "Forbidden", 'the service account may not update {kind} "{name}"', armed=True)),
    # dead connections and authorization outages (docs/safety.md)
    "silent-keepalive": Mode("kube-leader acquires; after 2.5 s the kept-alive connection of the next request goes silent "
                             "(no answer, no FIN, not applied) while new connections are answered",
                             on_request=silence_next_renew),
    "authz-outage": Mode("held by another (lease 2 s) while reads work; then for 3.5 s every request is answered 403 "
                         "(the second 401) and open watches end; then the holder stops and kube-leader may acquire; after "
                         "2.5 s as leader its next renew is answered 403",
                         start=held_by_other, other_lease=2, other_stops_at=6.0, outage=(2.5, 6.0),
                         on_request=authz_outage),
    "watch-silent": Mode("held by another (lease 3600 s, renewing every second); every watch answers its headers and then "
                         "nothing (no events, no bookmarks); after 3 s the holder releases the lock",
                         start=held_by_other, other_lease=3600, other_stops_at=3.0, other_releases=True,
                         on_watch=silent_watch),
    # watch streams (the lock is held by another replica that renews)
    "watch-blank-lines": Mode("watches stream blank lines without end", start=held_by_other, on_watch=junk(b"\n" * 4096)),
    "watch-unknown-type": Mode("watches stream events of an unknown type without end", start=held_by_other,
                               on_watch=junk(b'{"type":"WEIRD","object":{"kind":"Nothing"}}\n' * 64)),
    "watch-410": Mode("every watch answers an ERROR 410 Expired event and ends", start=held_by_other,
                      on_watch=expired_watch),
    "watch-http-410": Mode("every watch answers HTTP 410", start=held_by_other,
                           on_watch=status(410, "Expired", "too old resource version")),
    "watch-200-empty": Mode("every watch answers 200 with an empty body", start=held_by_other, on_watch=raw(b"")),
    "watch-deleted-no-metadata": Mode("every watch sends DELETED events with an object without metadata",
                                      start=held_by_other,
                                      on_watch=junk(b'{"type":"DELETED","object":{"kind":"Status"}}\n' * 8, pause=0.2)),
    "watch-other-objects": Mode("watches stream MODIFIED events for other objects without end", start=held_by_other,
                                on_watch=junk(OTHER_OBJECTS * 32)),
    "watch-line-never-ends": Mode("every watch streams one line that never ends", start=held_by_other,
                                  on_watch=line_never_ends),
    # a watch still being opened when the standby's deadline comes
    "watch-open-late": Mode("a holder that died (lease 5 s); the first watch ends with 410 after 3.5 s, later watches never "
                            "answer, reads after the first take 300 ms, updates answer 500",
                            start=held_by_the_dead(5), on_read=slow_reads(0), on_watch=open_late, on_update=ETCD_TIMEOUT),
    "read-retry-watch": Mode("a holder that died (lease 30 s); the first read answers 500, the second 500 after 300 ms, "
                             "later ones take 300 ms; the first watch never answers, later ones send their first event "
                             "after 500 ms",
                             start=held_by_the_dead(30), on_read=slow_reads(2), on_watch=late_first_event),
    # slow and endless bodies
    "renew-trickle": Mode("kube-leader acquires; after 2.5 s renews are answered in 1-byte writes, as fast as they go, "
                          "and not applied", on_update=flood("trickle")),
    "renew-endless": Mode("kube-leader acquires; after 2.5 s renews are answered with an endless body, as fast as it goes, "
                          "and not applied", on_update=flood("endless")),
    "get-trickle": Mode("held by another; GET bodies come 1 byte per 50 ms", start=held_by_other, on_read=trickle_object),
    "get-endless": Mode("held by another; GET bodies never end (as fast as they go)", start=held_by_other,
                        on_read=endless_object),
    # lies
    "create-other-holder": Mode("create is answered 201 with a record naming another holder, who then renews it every second",
                                on_create=create_for_other),
    # name resolution (with --dns: the runner points kube-leader's resolv.conf at us)
    "dns-down": Mode("kube-leader reaches the server by name; after 2.5 s as leader, DNS stops answering and every "
                     "response closes its connection", close_connections=True, dns_down=True),
    # configuration (the runner sets the token file or flags)
    "token-crlf": Mode("a normal server that requires the exact token (the token file ends in CRLF)"),
}


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
                down = state.m.dns_down and state.armed()
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
    if st.m.start:
        st.m.start(st)
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
