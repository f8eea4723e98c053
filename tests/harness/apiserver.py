"""One test cluster: etcd + mini-kube-apiserver (tests/infra) on free loopback ports, with TLS.

Setup talks HTTP with the standard library, not the kubernetes client: it is faster (the client
would deserialise megabytes of CRD schema into models) and keeps the harness independent of the
code under test.
"""
from __future__ import annotations

import base64
import ctypes
import http.client
import ipaddress
import json
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

# Admission plugins that need policy objects the mini server does not serve. The webhook plugins
# stay on: they call whatever Mutating/ValidatingWebhookConfigurations a test stores (none by default).
_DISABLED_ADMISSION = "ValidatingAdmissionPolicy,MutatingAdmissionPolicy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pod_address() -> str | None:
    """An address of this machine that the pod proxy accepts as a pod IP, for servers that stand in
    for pods; None when it has none.

    kube-apiserver proxies only to a global unicast pod IP, never loopback or link-local ("address
    not allowed", pkg/registry/core/pod/strategy.go ResourceLocation; the test server does the
    same), so such a server listens on this machine's own network address instead of 127.0.0.1.
    """
    candidates = []
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))  # UDP: the kernel picks the source address by route, sends nothing
                candidates.append(s.getsockname()[0])
        except OSError:
            pass
    for address in candidates:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified):
            return address
    return None


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(d: Path, name: str, subject: str, days: int) -> tuple[Path, Path]:
    """Self-signed CA (EC keys: generating them is instant, unlike RSA)."""
    crt, key = d / f"{name}.crt", d / f"{name}.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(crt), "-days", str(days), "-subj", subject,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return crt, key


def make_cert(d: Path, name: str, subject: str, ext: str, ca: tuple[Path, Path], days: int = 7) -> tuple[Path, Path]:
    crt, key, csr, extfile = d / f"{name}.crt", d / f"{name}.key", d / f"{name}.csr", d / f"{name}.ext"
    extfile.write_text(ext)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", subject)
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
            "-out", str(crt), "-days", str(days), "-extfile", str(extfile))
    return crt, key


def _die_with_parent(sig: int = signal.SIGTERM) -> None:
    # If pytest is killed, do not leave etcd/apiserver running (Linux PR_SET_PDEATHSIG).
    # Note: "parent" is the *thread* that spawned us, so spawn only from the main thread.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)
    except OSError:
        pass


class ApiError(Exception):
    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status, self.body = status, body


class _Connections:
    """One kept-alive HTTPS connection per thread. The played components poll every 0.2 s; a TLS
    handshake per request (urllib) cost the harness ~10x the CPU of the request itself, and the API
    server as much again."""
    IDLE = 20.0  # seconds: reconnect rather than reuse what the server may be closing (IdleTimeout 90 s, secure_serving.go:174)

    def __init__(self, api: "ApiServer"):
        self._api = api
        self._local = threading.local()

    def call(self, method: str, path: str, headers: list, body: bytes | None, timeout: float) -> tuple[int, str]:
        for attempt in range(2):
            conn, reused = self._connection(timeout)
            try:
                return self._send(conn, method, path, headers, body)
            except (OSError, http.client.HTTPException) as e:
                self.close()
                # Only a kept connection found dead (the server restarted or closed it) gets a second
                # try on a new one: that request never got an answer. A slow answer is no dead connection.
                if attempt or not reused or isinstance(e, TimeoutError):
                    raise e if isinstance(e, OSError) else ConnectionError(f"{self._api.name}: {e!r}") from None
        raise AssertionError("unreachable")

    def _connection(self, timeout: float) -> tuple[http.client.HTTPSConnection, bool]:
        conn, used = getattr(self._local, "conn", None), getattr(self._local, "used", 0.0)
        if conn is not None and time.monotonic() - used > self.IDLE:
            self.close()
            conn = None
        reused = conn is not None
        if conn is None:
            host, port = urllib.parse.urlsplit(self._api.server).netloc.rsplit(":", 1)
            conn = self._local.conn = http.client.HTTPSConnection(host, int(port), context=self._api._ssl,
                                                                  timeout=timeout)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn, reused

    def _send(self, conn, method: str, path: str, headers: list, body: bytes | None) -> tuple[int, str]:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read().decode(errors="replace")
        self._local.used = time.monotonic()
        if resp.will_close:
            self.close()
        return resp.status, data

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()


class ApiServer:
    """etcd + mini-kube-apiserver under `workdir`. start() spawns, wait_ready() blocks."""

    def __init__(self, name: str, bin_dir: Path, workdir: Path, flags: tuple = ()):
        """`flags`: more mini-kube-apiserver flags (e.g. --watch-cache=false), after the harness's own."""
        self.name, self.bin, self.dir = name, Path(bin_dir), Path(workdir)
        self.flags = tuple(flags)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.log = self.dir / "apiserver.log"
        # k8s.io/apiserver's audit log, one JSON event per line (tests/harness/audit.py reads it)
        self.audit_log = self.dir / "audit.log"
        self.etcd_log = self.dir / "etcd.log"
        self._etcd: subprocess.Popen | None = None
        self._api: subprocess.Popen | None = None
        pki = self.dir / "pki"
        pki.mkdir(exist_ok=True)
        self.ca_cert, self.ca_key = make_ca(pki, "ca", f"/CN={name}-kubernetes-ca", days=7)
        ca = (self.ca_cert, self.ca_key)
        self.server_cert, self.server_key = make_cert(
            pki, "server", "/CN=kube-apiserver", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n", ca)
        # O=system:masters: the server's authorizer allows this group everything (there is no RBAC).
        self.client_cert, self.client_key = make_cert(
            pki, "admin", f"/O=system:masters/CN={name}-admin", "extendedKeyUsage=clientAuth\n", ca)
        # The front-proxy CA an aggregated API server (virt-api) trusts for X-Remote-* headers, as
        # kubeadm sets it up; the server publishes it in kube-system/extension-apiserver-authentication.
        self.front_proxy_ca, _ = make_ca(pki, "front-proxy-ca", f"/CN={name}-front-proxy-ca", days=7)
        # The server authenticates/authorises delegated requests against itself.
        (self.dir / "self.kubeconfig").write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "self",
            "clusters": [{"name": "self", "cluster": {"server": self.server, "certificate-authority": str(self.ca_cert)}}],
            "users": [{"name": "self", "user": {"client-certificate": str(self.client_cert),
                                                 "client-key": str(self.client_key)}}],
            "contexts": [{"name": "self", "context": {"cluster": "self", "user": "self"}}],
        }))
        # Metadata level: who did what to which object, no bodies (Secret values stay out).
        # RequestReceived is dropped (every request also ends in ResponseComplete or Panic); a watch
        # keeps its ResponseStarted, logged while it is still open.
        (self.dir / "audit-policy.json").write_text(json.dumps({
            "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
            "rules": [{"level": "Metadata"}]}))
        self._ssl = ssl.create_default_context(cafile=str(self.ca_cert))
        self._ssl.load_cert_chain(str(self.client_cert), str(self.client_key))
        self._connections = _Connections(self)

    # ---- processes ----

    def start(self) -> None:
        cport, pport = free_port(), free_port()
        self._etcd_url = f"http://127.0.0.1:{cport}"
        peer = f"http://127.0.0.1:{pport}"
        self._etcd = self._spawn(
            [str(self.bin / "etcd"), "--data-dir", str(self.dir / "etcd"), "--listen-client-urls", self._etcd_url,
             "--advertise-client-urls", self._etcd_url, "--listen-peer-urls", peer,
             "--initial-advertise-peer-urls", peer, "--initial-cluster", f"default={peer}",
             "--unsafe-no-fsync", "--log-level", "warn"], self.etcd_log)
        self.start_apiserver()

    def start_apiserver(self) -> None:
        """(Re)start only the API server, on the same port and etcd."""
        assert self._api is None, "API server already running"
        self_kubeconfig = self.dir / "self.kubeconfig"
        self._api = self._spawn(
            [str(self.bin / "mini-kube-apiserver"), f"--etcd-servers={self._etcd_url}",
             "--bind-address=127.0.0.1", f"--secure-port={self.port}",
             f"--tls-cert-file={self.server_cert}", f"--tls-private-key-file={self.server_key}",
             f"--client-ca-file={self.ca_cert}", "--authentication-skip-lookup",
             f"--authentication-kubeconfig={self_kubeconfig}", f"--authorization-kubeconfig={self_kubeconfig}",
             f"--kubeconfig={self_kubeconfig}", "--enable-priority-and-fairness=false",
             # kubeadm's front-proxy flags
             f"--requestheader-client-ca-file={self.front_proxy_ca}", "--requestheader-allowed-names=front-proxy-client",
             "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
             "--requestheader-extra-headers-prefix=X-Remote-Extra-",
             f"--disable-admission-plugins={_DISABLED_ADMISSION}",
             # written before the response completes (the log backend's default mode is blocking)
             f"--audit-log-path={self.audit_log}", f"--audit-policy-file={self.dir / 'audit-policy.json'}",
             "--audit-log-maxsize=0",  # no rotation: tests/harness/audit.py reads from an offset
             *self.flags], self.log)

    def compact_etcd(self) -> int:
        """Compact etcd's history up to its current revision (through etcd's own v3 JSON gateway, as
        an operator's `etcdctl compact` would): reads at older revisions, e.g. an older continue
        token's, then fail with "required revision has been compacted". Returns that revision."""
        def post(path: str, body: dict) -> dict:
            request = urllib.request.Request(self._etcd_url + path, data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())

        revision = int(post("/v3/kv/range", {"key": base64.b64encode(b"\0").decode()})["header"]["revision"])
        post("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def stop_apiserver(self) -> None:
        if self._api is not None:
            _terminate(self._api)
            self._api = None

    def restart_apiserver(self, down_seconds: float = 0) -> None:
        """The API server goes away (connections refused) and comes back with the same data and port."""
        self.stop_apiserver()
        time.sleep(down_seconds)
        self.start_apiserver()
        self.wait_ready()
        self.wait_serving()

    def stop(self) -> None:
        """Stop both processes and drop etcd's data (its preallocated WAL is 64 MB) and the audit log
        (~1 kB a request: a whole suite's makes tens of MB); the other logs stay."""
        self.stop_apiserver()
        if self._etcd is not None:
            _terminate(self._etcd)
            self._etcd = None
            shutil.rmtree(self.dir / "etcd", ignore_errors=True)
            self.audit_log.unlink(missing_ok=True)

    def _spawn(self, argv: list[str], log: Path) -> subprocess.Popen:
        with open(log, "ab") as out:  # append: a restarted server keeps one log
            return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    preexec_fn=_die_with_parent)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for proc, log in ((self._etcd, self.etcd_log), (self._api, self.log)):
                if proc is None or proc.poll() is not None:
                    raise RuntimeError(f"{self.name}: {log.name} process exited:\n{_tail(log)}")
            try:
                if self.request("GET", "/readyz", timeout=2) == "ok":
                    return
            except (OSError, ApiError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: API server not ready after {timeout}s:\n{_tail(self.log)}")
            time.sleep(0.1)

    def wait_serving(self, timeout: float = 30) -> None:
        """readyz says OK before every watch cache is filled (requests then get 429 "storage is
        (re)initializing") and a CRD's cache starts only on first use: list every kind once."""
        deadline = time.monotonic() + timeout
        for base, r in self.resources():
            while True:
                try:
                    self.request("GET", f"{base}/{r['name']}?limit=1")
                    break
                except ApiError as e:
                    if e.status != 429 or time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

    def resources(self) -> list[tuple[str, dict]]:
        """(group-version path, APIResource) of every listable kind, preferred versions, from discovery."""
        gvs = ["/api/v1"] + [f"/apis/{g['preferredVersion']['groupVersion']}" for g in self.request("GET", "/apis")["groups"]]
        return [(gv, r) for gv in gvs for r in self.request("GET", gv)["resources"]
                if "/" not in r["name"] and "list" in r["verbs"]]

    # ---- HTTP ----

    def request(self, method: str, path: str, body=None, content_type: str = "application/json", timeout: float = 30,
                headers: tuple = ()):
        """One API call as the admin user (`headers`: more, e.g. Impersonate-*, repeated names
        allowed). Returns parsed JSON (or text); raises ApiError on HTTP errors, OSError when the
        server cannot be reached. `body` may be bytes (sent as is: the server also accepts
        application/yaml) or a JSON-able value."""
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        sent = [("Content-Type", content_type), ("Accept", "application/json"), *headers,
                ("Content-Length", str(len(body or b"")))]
        status, data = self._connections.call(method, path, sent, body, timeout)
        if status >= 400:
            raise ApiError(status, data)
        try:
            return json.loads(data)
        except ValueError:
            return data

    def install_crds(self, files: list[Path], timeout: float = 60) -> None:
        """Create the CRDs (YAML files, one CRD each) and wait until they are Established and discoverable."""
        crds = [self.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                             Path(f).read_bytes(), content_type="application/yaml") for f in files]
        deadline = time.monotonic() + timeout
        for crd in crds:
            name, group = crd["metadata"]["name"], crd["spec"]["group"]
            plural = crd["spec"]["names"]["plural"]
            while True:
                got = self.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                established = any(c["type"] == "Established" and c["status"] == "True"
                                  for c in (got.get("status") or {}).get("conditions") or [])
                # Discovery is updated asynchronously after Established; kubectl needs both.
                if established and self._discoverable(group, crd["spec"]["versions"], plural):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name}: CRD {name} not established/discoverable after {timeout}s")
                time.sleep(0.05)
        self.wait_serving()

    def _discoverable(self, group: str, versions: list[dict], plural: str) -> bool:
        groups = {g["name"] for g in self.request("GET", "/apis")["groups"]}
        if group not in groups:
            return False
        for v in versions:
            if v.get("served"):
                try:
                    res = self.request("GET", f"/apis/{group}/{v['name']}")["resources"]
                except ApiError:
                    return False
                if plural not in {r["name"] for r in res}:
                    return False
        return True


def _terminate(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"
