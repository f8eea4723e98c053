"""KubeVirt's own virt-api, virt-controller and synchronization-controller on two test clusters.

    kubevirt_bin       (session)  dir with the KubeVirt programs (tests/infra/build-kubevirt.sh)
    kubevirt_clusters  (session)  Clusters "source" and "target", each with KubeVirt running

The harness plays virt-operator (which cannot run here: it deploys Pods, and nothing runs Pods).
Everything it installs comes from KubeVirt's own code, printed by `dlm-kubevirt-manifests`
(tests/infra/kubevirt-cmd): the CRDs, Services, webhook configurations, certificate Secrets and CA
ConfigMaps, and each component's command line from its Deployment. The harness adds only what a
pod would get from the kubelet: a kubeconfig (instead of a service account token), its
certificate files at the paths the Deployment mounts them (an overlay on /etc in a private mount
namespace: the machine's /etc is never written), a host name (its pod name, in a private UTS
namespace) and an address. virt-api's and virt-controller's "pods" get their own loopback address
(127.<session>.<cluster>.<component>), so both clusters' listen on the ports their Deployments name.
The synchronization controllers are dialled by the other cluster, and `kubectl dlm check` rightly
refuses a loopback address there: they get this machine's own network address (pod_address()), each
cluster on its own port, chosen free for the session and set as an admin does, in the KubeVirt CR's
spec.synchronizationPort.

What is real and what is played: tests/kubevirt/README.md.
"""
from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .apiserver import ApiError, ApiServer, _die_with_parent, _terminate, pod_address
from .clusters import (HARNESS_CRDS, NAMES, STORAGE_CLASSES, Cluster, Clusters, _ci, _unavailable,
                       publish_endpoint_slice, shared_dir, write_kubeconfig)
from .kubevirt_ca import CAOperator
from tests.kubevirt.loop import Loop

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "tests" / "infra"
KUBEVIRT_CRDS = REPO / "tests" / "kubevirt" / "crds"   # CDI stand-ins (CDI is not built)
BUILD_CMD = "bash tests/infra/build-kubevirt.sh"
NOT_BUILT = "KUBEVIRT NOT BUILT"
PROGRAMS = ("virt-api", "virt-controller", "synchronization-controller", "dlm-kubevirt-manifests", "dlm-client-cert")
NS = "kubevirt"
GATE = "DecentralizedLiveMigration"

# Pod addresses: 127.<session>.<cluster>.<component>. All of 127/8 is the loopback interface on
# Linux; <session> keeps two test sessions on one machine apart (see session_octet).
CLUSTER_NET = {"source": 1, "target": 2}
COMPONENT_HOST = {"virt-api": 11, "virt-controller": 12}
SYNC = "virt-synchronization-controller"
COMPONENTS = ("virt-api", "virt-controller", SYNC)   # Deployment names
PROGRAM_OF = {"virt-synchronization-controller": "synchronization-controller"}


def pinned() -> dict[str, str]:
    """tests/infra/kubevirt.env: the one place the KubeVirt version and tarball checksum are pinned."""
    out = {}
    for line in (INFRA / "kubevirt.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


# ---- the binaries ----

def _has_programs(d: Path) -> bool:
    return all(os.access(d / p, os.X_OK) for p in PROGRAMS)


def _cached_build() -> Path | None:
    """The newest build in build-kubevirt.sh's cache from the current sources (no hashing of the tarball)."""
    root = Path(os.environ.get("KUBEVIRT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                / "kubectl-dlm" / "kubevirt")
    want = sources_hash()
    found = [d for d in root.glob("*/") if _has_programs(d) and (d / "SOURCES.sha256").is_file()
             and (d / "SOURCES.sha256").read_text().strip() == want]
    return max(found, key=lambda d: d.stat().st_mtime, default=None)


def sources_hash() -> str:
    """What build-kubevirt.sh writes to SOURCES.sha256: our build inputs, in the same order."""
    files = [INFRA / "build-kubevirt.sh", INFRA / "kubevirt.env"]
    ours = INFRA / "kubevirt-cmd"
    files += sorted((p for p in ours.rglob("*") if p.is_file()), key=lambda p: str(p).encode())
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


@pytest.fixture(scope="session")
def kubevirt_bin() -> Path:
    env = os.environ.get("KUBEVIRT_BIN")
    if env:
        if not _has_programs(Path(env)):
            _unavailable(f"{NOT_BUILT}: KUBEVIRT_BIN={env} lacks {', '.join(PROGRAMS)}; run `{BUILD_CMD}`")
        return Path(env)
    if _ci():
        out = subprocess.run(["bash", str(INFRA / "build-kubevirt.sh")], stdout=subprocess.PIPE, text=True)
        lines = out.stdout.strip().splitlines()
        if out.returncode == 0 and lines and _has_programs(Path(lines[-1])):
            return Path(lines[-1])
        pytest.fail(f"`{BUILD_CMD}` failed (exit {out.returncode})", pytrace=False)
    found = _cached_build()
    if found is None:
        _unavailable(f"{NOT_BUILT}: run `{BUILD_CMD}` once (~4 min), or set KUBEVIRT_BIN")
    return found


# ---- one component, run like its pod ----

class Component:
    """One KubeVirt program started as its Deployment's pod would run it (see the module docstring)."""

    def __init__(self, cluster: str, deployment: dict, secrets: dict[str, dict], bin_dir: Path, kubeconfig: Path,
                 workdir: Path, ip: str, replica: int = 0):
        self.name = deployment["metadata"]["name"]
        self.cluster = cluster
        self.ip = ip
        self.pod_name = f"{self.name}-{cluster}-{replica}"
        self.dir = workdir / (self.name if replica == 0 else f"{self.name}-{replica}")
        self.log = self.dir / f"{self.name}.log"
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        self.ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        self.labels = deployment["spec"]["template"]["metadata"].get("labels", {})
        self.service_account = pod["serviceAccountName"]
        argv = list(container.get("command", [])) + list(container.get("args", []))
        # `go build` names a program after its directory; KubeVirt's Bazel build and Deployment call
        # cmd/synchronization-controller "virt-synchronization-controller" (its BUILD.bazel:39).
        argv[0] = str(bin_dir / PROGRAM_OF.get(argv[0], argv[0]))
        # Where a pod gets these from the API server's service account and the downward API.
        self.argv = argv + ["--kubeconfig", str(kubeconfig), "--listen", self.ip]
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.dir)}
        for e in container.get("env", []):
            if "value" in e:
                self.env[e["name"]] = e["value"]
            elif (e.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") == "status.podIP":
                self.env[e["name"]] = self.ip
        # Secret volumes at their mount paths, under an overlay of /etc (only /etc/... paths are used).
        self.upper, self.overlay_work = self.dir / "etc", self.dir / ".etc-work"
        self.upper.mkdir(parents=True)
        self.overlay_work.mkdir()
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for m in container.get("volumeMounts", []):
            secret = (volumes.get(m["name"]) or {}).get("secret")
            if not secret:
                continue
            path = Path(m["mountPath"])
            if path.parts[:2] != ("/", "etc"):
                raise RuntimeError(f"{self.name}: secret mounted outside /etc ({path}): not supported")
            target = self.upper.joinpath(*path.parts[2:])
            target.mkdir(parents=True, exist_ok=True)
            for key, value in secrets[secret["secretName"]]["data"].items():
                (target / key).write_bytes(base64.b64decode(value))
                (target / key).chmod(0o600)
        self.proc: subprocess.Popen | None = None
        # The played kubelet (Kubelet below) and the harness's faults both start and stop it.
        self.lock = threading.RLock()
        self.restarts = 0
        self._started = 0.0
        self._backoff = 0.0
        self._restart_at: float | None = None

    def start(self) -> None:
        script = ('mount -t overlay overlay -o "lowerdir=/etc,upperdir=$0,workdir=$1" /etc && hostname "$2" '
                  '&& shift 2 && exec "$@"')
        with self.lock, open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [*unshare(), "sh", "-c", script,
                 str(self.upper), str(self.overlay_work), self.pod_name, *self.argv],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                # SIGKILL: a synchronization controller that is not leading ignores SIGTERM, and one
                # outlived every interrupted session
                preexec_fn=lambda: _die_with_parent(signal.SIGKILL))
            self._started, self._restart_at = time.monotonic(), None

    def check_running(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.cluster}/{self.name} exited:\n{tail(self.log)}")

    def stop(self) -> None:
        """The process ends and stays ended (a fault, or the pod deleted): the played kubelet restarts
        only a container that exited by itself."""
        with self.lock:
            if self.proc is not None:
                self.proc.terminate()
                self.proc.send_signal(signal.SIGCONT)   # a paused one (pause()) takes SIGTERM only once resumed
                _terminate(self.proc)
                self.proc = None

    def restart_if_exited(self) -> None:
        """What the kubelet does for a container of a restartPolicy Always pod (every Deployment's) that
        exited: start it again in the same pod (same name, so the same Lease identity) after a back-off
        that doubles per restart and is forgotten once a run lasted long enough. The kubelet's is
        10 s doubling to 5 min (pkg/kubelet: backOffPeriod, MaxContainerBackOff); here 1 s doubling to
        8 s, reset after 60 s of running, so a test does not wait minutes."""
        with self.lock:
            if self.proc is None or self.proc.poll() is None:
                return
            now = time.monotonic()
            if self._restart_at is None:
                ran = now - self._started
                self._backoff = 1.0 if ran > 60 or not self._backoff else min(self._backoff * 2, 8.0)
                self._restart_at = now + self._backoff
                with open(self.log, "a") as out:
                    out.write(f"played kubelet: {self.name} exited with code {self.proc.returncode} after {ran:.0f}s; "
                              f"restarting in {self._backoff:.0f}s\n")
            if now >= self._restart_at:
                self.restarts += 1
                self.start()

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts TCP connections on its sockets, nothing answers them."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)


class Kubelet(Loop):
    """The kubelet's part for KubeVirt's own component pods, played: a container that exits is started
    again (Component.restart_if_exited). virt-controller exits when it loses its Lease, e.g. while the
    API server is away longer than its renew deadline (golog.Fatal in OnStoppedLeading,
    pkg/virt-controller/watch/application.go:1170-1172 @v1.9.0; 10 s, leaderelectionconfig/config.go:31-33)."""
    name = "kubelet"

    def __init__(self, install: "KubeVirtInstall"):
        super().__init__(install.cluster, 0.2)
        self.install = install

    def step(self) -> None:
        for comp in self.install.pods():
            comp.restart_if_exited()


_octet: list[int] = []


def session_octet() -> int:
    """A second address octet no other test session on this machine uses: the ports are fixed by
    KubeVirt's Deployments (8443 for virt-api and virt-controller), so the addresses must differ."""
    if not _octet:
        for o in [(os.getpid() + i) % 200 + 20 for i in range(200)]:
            with socket.socket() as s:
                try:
                    s.bind((f"127.{o}.1.11", 8443))
                except OSError:
                    continue
            _octet.append(o)
            break
        else:
            raise RuntimeError("no free 127.x.1.11:8443 for the KubeVirt tier")
    return _octet[0]


def sync_address() -> str:
    """The synchronization controllers' pod IP: this machine's own network address (never loopback,
    which `kubectl dlm check` refuses and a peer could not dial)."""
    address = pod_address()
    if address is None:
        _unavailable("KubeVirt tier: this machine has no global unicast address for the synchronization "
                     "controllers (a peer cannot dial loopback)")
    return address


def free_ports(address: str, n: int) -> list[int]:
    """n distinct ports free on address now (the kernel's choice, so another test session on this
    machine holds none of them)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    socks = [socket.socket(family) for _ in range(n)]
    try:
        for s in socks:
            s.bind((address, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def join_host_port(host: str, port: int) -> str:
    """Go's net.JoinHostPort (core.go updateSynchronizationAddress uses it)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def unshare() -> list[str]:
    """A private mount and UTS namespace; without root, inside a user namespace of our own."""
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return ["unshare", *user, "--mount", "--uts", "--propagation", "private"]


def tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


def wait_tls(host: str, port: int, deadline: float, component: Component) -> None:
    """Until host:port completes a TLS handshake (KubeVirt's servers accept any client for the hello)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    while True:
        component.check_running()
        try:
            with socket.create_connection((host, port), timeout=2) as s, ctx.wrap_socket(s):
                return
        except (OSError, ssl.SSLError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{component.cluster}/{component.name}: {host}:{port} not serving TLS:\n"
                                   f"{tail(component.log)}") from None
            time.sleep(0.2)


# ---- virt-operator, played ----

class KubeVirtInstall:
    """What virt-operator installs and runs on one cluster, and the components themselves."""

    def __init__(self, cluster: Cluster, bin_dir: Path, workdir: Path, sync_ip: str, sync_port: int):
        self.cluster, self.bin = cluster, bin_dir
        self.sync_ip, self.sync_port = sync_ip, sync_port
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.req = cluster.request
        self.components: dict[str, Component] = {}
        self.manifests: dict = {}
        self.ca_operator = CAOperator(cluster)
        self.faults: dict[str, object] = {}   # what block_sync/disable_feature_gate changed, for restore()
        # The synchronization controller's second replica (its Deployment has two, newBaseDeployment,
        # generate/components/deployments.go:263 @v1.9.0): waiting for the Lease, it takes over when
        # the leader loses it. components[SYNC] is the replica holding the Lease (follow_sync_leader).
        self.sync_standby: Component | None = None
        self._sync_replicas = itertools.count()
        self.kubelet = Kubelet(self)

    # The KubeVirt CR as an admin creates it for DLM (the gate is Alpha in v1.9.0), with the port the
    # synchronization controller listens on (spec.synchronizationPort: its Deployment's --port,
    # pkg/virt-operator/util/config.go:608-620 + generate/components/deployments.go:790-797 @v1.9.0).
    def kubevirt_cr(self) -> dict:
        return {"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt",
                "metadata": {"name": "kubevirt", "namespace": NS},
                "spec": {"synchronizationPort": str(self.sync_port),
                         "configuration": {"developerConfiguration": {"featureGates": [GATE]}}}}

    def generate(self) -> None:
        """Run dlm-kubevirt-manifests (KubeVirt's install strategy + certificates) for this cluster."""
        self.manifests = self.print_manifests(self.kubevirt_cr())
        (self.dir / "manifests.json").write_text(json.dumps(self.manifests))

    def print_manifests(self, kv: dict) -> dict:
        """What virt-operator's code installs for this KubeVirt CR (new certificates each time: only
        the first run's are installed)."""
        path = self.dir / "kubevirt-cr.json"
        path.write_text(json.dumps(kv))
        version = pinned()["KUBEVIRT_VERSION"]
        env = dict(os.environ, VIRT_OPERATOR_IMAGE=f"kubevirt/virt-operator:{version}", KUBEVIRT_VERSION=version)
        out = subprocess.run([str(self.bin / "dlm-kubevirt-manifests"), "-kubevirt", str(path)],
                             capture_output=True, text=True, env=env, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"dlm-kubevirt-manifests failed: {out.stderr}")
        return json.loads(out.stdout)

    def ca_pem(self) -> str:
        return self.configmap("kubevirt-ca")["data"]["ca-bundle"]

    def configmap(self, name: str) -> dict:
        return next(c for c in self.manifests["configMaps"] if c["metadata"]["name"] == name)

    def install_crds(self) -> None:
        crd_dir = self.dir / "crds"
        crd_dir.mkdir(exist_ok=True)
        files = []
        for crd in self.manifests["customResourceDefinitions"]:
            f = crd_dir / f"{crd['metadata']['name']}.json"
            f.write_text(json.dumps(crd))
            files.append(f)
        shared = shared_dir()
        # the standard tier's stand-ins for CRDs KubeVirt's code already printed (MigrationPolicy) stay out
        real = {crd["metadata"]["name"] for crd in self.manifests["customResourceDefinitions"]}
        files += [shared / "crds/kubevirt-main/cdi.kubevirt.io_datavolumes.crd.yaml",
                  *sorted(KUBEVIRT_CRDS.glob("*.yaml")),
                  *sorted(f for f in HARNESS_CRDS.glob("*.yaml") if f.name.removesuffix(".crd.yaml") not in real)]
        self.cluster.api.install_crds(files)

    def create(self, path: str, obj: dict) -> dict:
        try:
            return self.req("POST", path, obj)
        except ApiError as e:
            if e.status != 409:
                raise
            return obj

    def install(self) -> None:
        """The objects, in virt-operator's order where it matters (certificates before components)."""
        c = self.cluster
        for name, (provisioner, binding) in STORAGE_CLASSES[c.name].items():
            annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if name == "standard" else {}
            self.create("/apis/storage.k8s.io/v1/storageclasses", {
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": name, "annotations": annotations}, "provisioner": provisioner,
                "reclaimPolicy": "Delete", "volumeBindingMode": binding, "allowVolumeExpansion": True})
        c.create_namespace(NS)
        # kube-apiserver publishes this (pkg/controlplane/controller/clusterauthenticationtrust); the
        # mini server does not. virt-api refuses to start without requestheader-client-ca-file
        # (pkg/virt-api/api.go readRequestHeader).
        ca = c.api.ca_cert.read_text()
        self.create("/api/v1/namespaces/kube-system/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
            "data": {"client-ca-file": ca, "requestheader-client-ca-file": ca,
                     "requestheader-username-headers": '["X-Remote-User"]',
                     "requestheader-group-headers": '["X-Remote-Group"]',
                     "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
                     "requestheader-allowed-names": '["front-proxy-client"]'}})
        m = self.manifests
        for sa in m["serviceAccounts"]:
            self.create(f"/api/v1/namespaces/{sa['metadata']['namespace']}/serviceaccounts", sa)
        for s in m["secrets"]:
            self.create(f"/api/v1/namespaces/{s['metadata']['namespace']}/secrets", s)
        for cm in m["configMaps"]:
            self.create(f"/api/v1/namespaces/{cm['metadata']['namespace']}/configmaps", cm)
        for svc in m["services"]:
            self.create(f"/api/v1/namespaces/{svc['metadata']['namespace']}/services", svc)
        self.create(f"/apis/kubevirt.io/v1/namespaces/{NS}/kubevirts", self.kubevirt_cr())

    def components_from_deployments(self) -> None:
        secrets = {s["metadata"]["name"]: s for s in self.manifests["secrets"]}
        deployments = {d["metadata"]["name"]: d for d in self.manifests["deployments"]}
        for name in COMPONENTS:
            sa = deployments[name]["spec"]["template"]["spec"]["serviceAccountName"]
            kubeconfig = component_kubeconfig(self.cluster.api, self.dir / f"{sa}.kubeconfig", *self.credentials(sa))
            ip = self.sync_ip if name == SYNC else \
                f"127.{session_octet()}.{CLUSTER_NET[self.cluster.name]}.{COMPONENT_HOST[name]}"
            replica = next(self._sync_replicas) if name == SYNC else 0
            self.components[name] = Component(self.cluster.name, deployments[name], secrets, self.bin, kubeconfig,
                                              self.dir, ip, replica=replica)
        self.sync_standby = self.sync_replica(deployments[SYNC], self.sync_ip)

    def sync_replica(self, deployment: dict, ip: str) -> Component | None:
        """The synchronization controller's second pod, if its Deployment asks for two. On this machine
        it shares the leader's address and port: the port is bound only by the leader (SynchronizationController.Run,
        pkg/synchronization-controller/synchronization-controller.go:265-273 @v1.9.0, after it took the Lease)
        and released when it stops leading (closeConnections, :284-296)."""
        if (deployment["spec"].get("replicas") or 1) < 2:
            return None
        return self.sync_pod(deployment, ip)

    def sync_pod(self, deployment: dict, ip: str) -> Component:
        """A new pod of the synchronization controller's Deployment (the next replica number), with the
        certificates and the kubeconfig the install made."""
        sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        secrets = {s["metadata"]["name"]: s for s in self.manifests["secrets"]}
        return Component(self.cluster.name, deployment, secrets, self.bin, self.dir / f"{sa}.kubeconfig", self.dir, ip,
                         replica=next(self._sync_replicas))

    def pods(self) -> list[Component]:
        """Every component process of this cluster, standby included."""
        return [*self.components.values(), *([self.sync_standby] if self.sync_standby else [])]

    def start_sync_standby(self) -> None:
        """The second replica, once the first holds the Lease (so which one leads is known)."""
        if self.sync_standby is not None:
            self.publish_pod(self.sync_standby)
            self.sync_standby.start()

    def follow_sync_leader(self) -> Component:
        """components[SYNC] := the replica holding the Lease. A leader that lost its Lease (the API
        server away longer than its renew deadline) stops its controller and its gRPC server but its
        process stays, never running for the Lease again (OnStoppedLeading only cancels the controller,
        cmd/synchronization-controller/synchronization-controller.go:357-360; runWithLeaderElection then
        waits for a signal, :361-368; the Deployment has no liveness probe, deployments.go:811-824), so
        the standby takes over once the Lease expired."""
        standby = self.sync_standby
        if standby is not None and self.lease_holder(SYNC) == standby.pod_name:
            self.sync_standby, self.components[SYNC] = self.components[SYNC], standby
        return self.components[SYNC]

    def credentials(self, service_account: str) -> tuple[Path, Path]:
        """A client certificate that authenticates as service account kubevirt/<name>, as its token
        would: virt-api lets only KubeVirt's own service accounts change a VMI's status
        (pkg/virt-api/webhooks/serviceaccounts.go, used by the VMI mutating and update webhooks).
        Also in system:masters: the mini server has no RBAC authorizer (tests/kubevirt/README.md)."""
        pki = self.dir / "pki"
        pki.mkdir(exist_ok=True)
        crt, key = pki / f"{service_account}.crt", pki / f"{service_account}.key"
        if not crt.exists():
            api = self.cluster.api
            groups = ["system:masters", "system:serviceaccounts", f"system:serviceaccounts:{NS}"]
            subprocess.run([str(self.bin / "dlm-client-cert"), "-ca-cert", str(api.ca_cert), "-ca-key", str(api.ca_key),
                            "-cn", f"system:serviceaccount:{NS}:{service_account}", *(a for g in groups for a in ("-o", g)),
                            "-out-cert", str(crt), "-out-key", str(key)], check=True, capture_output=True)
        return crt, key

    def request_as(self, service_account: str, node: str | None = None):
        """Cluster.request as a KubeVirt service account, by impersonation (as the admin). A played
        virt-handler needs it: virt-api lets a handler change only VMIs on the node named in its
        token's extra authentication.kubernetes.io/node-name
        (pkg/virt-api/webhooks/validating-webhook/admitters/vmi-update-admitter.go:62-97), which a
        client certificate cannot carry."""
        api = self.cluster.api
        headers = {"Impersonate-User": f"system:serviceaccount:{NS}:{service_account}"}
        # system:masters: the mini server authorises nothing else (no RBAC; tests/kubevirt/README.md).
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{NS}", "system:authenticated", "system:masters"]
        if node:
            headers["Impersonate-Extra-authentication.kubernetes.io%2fnode-name"] = node

        def request(method: str, path: str, body=None, content_type: str = "application/json"):
            # Kubernetes reads one Impersonate-Group header per group.
            return api.request(method, path, body, content_type=content_type,
                               headers=(*headers.items(), *(("Impersonate-Group", g) for g in groups)))
        return request

    def publish_virt_api(self) -> None:
        """Once virt-api serves: the Service's endpoints pointing at its Pod."""
        api = self.components["virt-api"]
        # The endpoints and endpointslice controllers' work for Service kubevirt/virt-api.
        port = api.ports["virt-api"]
        self.create(f"/api/v1/namespaces/{NS}/endpoints", {
            "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "virt-api", "namespace": NS},
            "subsets": [{"addresses": [{"ip": api.ip, "targetRef": {"kind": "Pod", "name": api.pod_name,
                                                                   "namespace": NS}}],
                         "ports": [{"port": port, "protocol": "TCP"}]}]})
        publish_endpoint_slice(self.cluster, NS, "virt-api", port, api.ip, pod=api.pod_name)

    def install_webhooks(self) -> None:
        """virt-api's webhook configurations. virt-operator's own (service virt-operator) is left out:
        virt-operator does not run here, and its failurePolicy would then deny what it guards."""
        def ours(w):
            return all((h["clientConfig"].get("service") or {}).get("name") == "virt-api" for h in w["webhooks"])
        for w in self.manifests["mutatingWebhookConfigurations"]:
            if ours(w) and w["metadata"]["name"] == "virt-api-mutator":
                self.create("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", w)
        for w in self.manifests["validatingWebhookConfigurations"]:
            if ours(w):
                self.create("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", w)

    def publish_pod(self, comp: Component) -> None:
        """The component's Pod as the API server would hold it: its labels (virt-controller and the
        operator look pods up by them) and its IP (virt-operator reads the sync controller's)."""
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": comp.pod_name, "namespace": NS, "labels": comp.labels},
               "spec": {"containers": [{"name": comp.name, "image": f"kubevirt/{comp.name}"}]}}
        created = self.create(f"/api/v1/namespaces/{NS}/pods", pod)
        if "metadata" in created:
            self.req("PATCH", f"/api/v1/namespaces/{NS}/pods/{comp.pod_name}/status",
                     {"status": {"phase": "Running", "podIP": comp.ip, "podIPs": [{"ip": comp.ip}],
                                 "conditions": [{"type": "Ready", "status": "True"}]}},
                     content_type="application/merge-patch+json")

    def start(self, name: str) -> None:
        self.publish_pod(self.components[name])
        self.components[name].start()

    def lease_holder(self, name: str) -> str | None:
        try:
            lease = self.req("GET", f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{name}")
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return (lease.get("spec") or {}).get("holderIdentity")

    def wait_leaders(self, deadline: float) -> None:
        self.wait_leader("virt-controller", deadline)
        self.wait_sync_leader(deadline)

    def wait_leader(self, name: str, deadline: float) -> None:
        comp = self.components[name]
        while self.lease_holder(name) != comp.pod_name:
            comp.check_running()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.cluster.name}/{name} did not take its Lease:\n{tail(comp.log)}")
            time.sleep(0.2)

    def wait_sync_leader(self, deadline: float) -> None:
        self.wait_leader(SYNC, deadline)
        sync = self.components[SYNC]
        wait_tls(sync.ip, sync.ports["sync"], deadline, sync)

    def kubevirt(self) -> dict:
        return self.req("GET", f"/apis/kubevirt.io/v1/namespaces/{NS}/kubevirts/kubevirt")

    def synchronization_addresses(self, kv: dict) -> list[str] | None:
        """pkg/virt-operator/resource/apply/core.go:811-872 (updateSynchronizationAddress) @v1.9.0:
        none while the gate is off (featuregate.IsEnabled: featureGates wins over
        disabledFeatureGates, an Alpha gate is off unless listed), else the Lease holder Pod's IPs
        (no migration network here, so no multus annotation) with spec.synchronizationPort (default
        9185)."""
        dev = (kv["spec"].get("configuration") or {}).get("developerConfiguration") or {}
        if GATE not in (dev.get("featureGates") or []):
            return None
        holder = self.lease_holder(SYNC)
        if not holder:
            return None
        try:
            pod = self.req("GET", f"/api/v1/namespaces/{NS}/pods/{holder}")
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        if pod["metadata"].get("deletionTimestamp"):
            return None
        ips = [p["ip"] for p in (pod.get("status") or {}).get("podIPs") or []]
        if not ips:
            return None
        port = int(kv["spec"].get("synchronizationPort") or 9185)
        return [join_host_port(ip, port) for ip in ips]

    def update_status(self) -> None:
        """KubeVirt CR status as virt-operator writes it once everything is deployed, with
        synchronizationAddresses as updateSynchronizationAddress computes them."""
        version = pinned()["KUBEVIRT_VERSION"]
        addresses = self.synchronization_addresses(self.kubevirt())
        ready = {"lastProbeTime": None, "lastTransitionTime": None, "reason": "AllComponentsReady",
                 "message": "All components are ready."}
        self.req("PATCH", f"/apis/kubevirt.io/v1/namespaces/{NS}/kubevirts/kubevirt/status", {"status": {
            "phase": "Deployed", "observedKubeVirtVersion": version, "targetKubeVirtVersion": version,
            "operatorVersion": version, "defaultArchitecture": "amd64", "synchronizationAddresses": addresses,
            "conditions": [dict(ready, type="Available", status="True"),
                           dict(ready, type="Progressing", status="False"),
                           dict(ready, type="Degraded", status="False")]}},
            content_type="application/merge-patch+json")

    # ---- faults, as they happen to a real installation (tests/kubevirt/tier.py's Faults names them) ----

    def block_sync(self, mode: str = "refused") -> None:
        """The synchronization controller stops answering at its published address. "refused": its
        process is gone (crashed; its Pod and the Lease it held stay until they expire, so the
        address stays published), the port refuses connections. "timeout": its process hangs
        (SIGSTOP), the kernel still accepts the connection and the TLS handshake never gets an answer."""
        assert mode in ("refused", "timeout"), mode
        sync = self.follow_sync_leader()
        if mode == "refused":
            sync.stop()
        else:
            sync.pause()
        if self.sync_standby is not None:   # held down too: it would take the Lease after 15 s and heal the fault
            self.sync_standby.stop()
        self.faults["sync"] = mode

    def unblock_sync(self) -> None:
        """The kubelet restarts the container: the same Pod (so the same Lease identity, taken back at
        once) with a fresh process."""
        if self.faults.pop("sync", None) is None:
            return
        sync = self.components[SYNC]
        sync.stop()
        sync.start()
        self.wait_sync_leader(time.monotonic() + 60)
        self.start_sync_standby()
        self.update_status()

    def move_sync_leader(self) -> str:
        """The synchronization controller's leader moves to a new Pod at a new address; returns the
        address virt-operator then publishes. On one machine a new Pod cannot get a new IP, so the
        address changes the way an admin changes it: a new spec.synchronizationPort, which virt-
        operator rolls out as a new Deployment (its --port, generate/components/deployments.go:790-797);
        the new Pod starts, the old one is deleted, the new one takes the Lease once the old holder's
        expires (LeaseDuration 15 s, leaderelectionconfig/config.go; the old one does not release it,
        cmd/synchronization-controller runWithLeaderElection) and the operator publishes its address
        (core.go:811-872). The old address no longer answers."""
        old, old_standby = self.follow_sync_leader(), self.sync_standby
        [port] = free_ports(self.sync_ip, 1)
        self.req("PATCH", f"/apis/kubevirt.io/v1/namespaces/{NS}/kubevirts/kubevirt",
                 {"spec": {"synchronizationPort": str(port)}}, content_type="application/merge-patch+json")
        kv = self.kubevirt()
        deployment = next(d for d in self.print_manifests(kv)["deployments"] if d["metadata"]["name"] == SYNC)
        new = self.sync_pod(deployment, self.sync_ip)   # the certificates stay
        self.sync_port = port
        self.components[SYNC] = new
        self.sync_standby = self.sync_replica(deployment, self.sync_ip)
        self.start(SYNC)
        for gone in (old, old_standby):
            if gone is not None:
                gone.stop()
                self.req("DELETE", f"/api/v1/namespaces/{NS}/pods/{gone.pod_name}")
        self.wait_sync_leader(time.monotonic() + 90)
        self.start_sync_standby()
        self.update_status()
        return join_host_port(self.sync_ip, port)

    def disable_feature_gate(self) -> None:
        """DLM off the way an admin turns it off: out of featureGates, into disabledFeatureGates. The
        real virt-api and virt-controller read the CR themselves; virt-operator deletes the
        synchronization controller's Deployment (reconcile.go:615-627, so its Pod goes) and clears
        synchronizationAddresses (core.go:812-814)."""
        kv = self.kubevirt()
        dev = kv["spec"]["configuration"]["developerConfiguration"]
        self.faults.setdefault("gate", dev)
        edited = dict(dev, featureGates=[g for g in dev.get("featureGates") or [] if g != GATE],
                      disabledFeatureGates=[g for g in dev.get("disabledFeatureGates") or [] if g != GATE] + [GATE])
        self.set_developer_configuration(edited)
        self.follow_sync_leader()
        for sync in (self.components[SYNC], self.sync_standby):
            if sync is not None:
                sync.stop()
                self.req("DELETE", f"/api/v1/namespaces/{NS}/pods/{sync.pod_name}")
        self.update_status()

    def enable_feature_gate(self) -> None:
        """The developerConfiguration back as it was; virt-operator creates the Deployment again (its
        Pod takes the same name here, so it takes its old Lease at once instead of after 15 s)."""
        dev = self.faults.pop("gate", None)
        if dev is None:
            return
        self.set_developer_configuration(dev)
        self.faults.pop("sync", None)
        self.start(SYNC)
        self.wait_sync_leader(time.monotonic() + 60)
        self.start_sync_standby()
        self.update_status()

    def set_developer_configuration(self, dev: dict) -> None:
        # a JSON patch: a merge patch cannot empty a list the admin removed
        self.req("PATCH", f"/apis/kubevirt.io/v1/namespaces/{NS}/kubevirts/kubevirt",
                 [{"op": "replace", "path": "/spec/configuration/developerConfiguration", "value": dev}],
                 content_type="application/json-patch+json")

    def restore(self) -> None:
        """Every fault above undone (a moved leader stays where it went: that is a healthy state)."""
        self.enable_feature_gate()
        self.unblock_sync()

    def trust(self, peer: "KubeVirtInstall", timeout: float = 30) -> None:
        """What a DLM admin does: kubevirt-external-ca := the peer's CA; then wait until the played
        virt-operator (kubevirt_ca.py) merged it into kubevirt-ca."""
        theirs = peer.ca_pem()
        self.req("PATCH", f"/api/v1/namespaces/{NS}/configmaps/kubevirt-external-ca",
                 {"data": {"ca-bundle": theirs}}, content_type="application/merge-patch+json")
        deadline = time.monotonic() + timeout
        while theirs not in self.req("GET", f"/api/v1/namespaces/{NS}/configmaps/kubevirt-ca")["data"]["ca-bundle"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.cluster.name}: virt-operator (played) did not merge the peer's CA: "
                                   f"{self.ca_operator.errors}")
            time.sleep(0.1)

    def distrust(self) -> None:
        """kubevirt-ca back to the own CA only, the drop box empty (the harness's baseline before trust())."""
        for name, text in (("kubevirt-external-ca", ""), ("kubevirt-ca", self.ca_pem())):
            self.req("PATCH", f"/api/v1/namespaces/{NS}/configmaps/{name}", {"data": {"ca-bundle": text}},
                     content_type="application/merge-patch+json")

    def stop(self) -> None:
        """The end of the session: SIGKILL, as nothing waits on a graceful shutdown here (virt-api
        takes 5 s after SIGTERM, a synchronization controller that is not leading ignores it: 10 s
        each until _terminate kills it)."""
        self.kubelet.stop()
        self.ca_operator.stop()
        for comp in self.pods():
            if comp.proc is not None:
                comp.proc.kill()
        for comp in self.pods():
            comp.stop()

    def logs(self) -> list[tuple[str, Path]]:
        return [(f"{self.cluster.name}/{c.pod_name}", c.log) for c in self.pods()]


class KubeVirtClusters(Clusters):
    def __init__(self, clusters: list[Cluster], kubeconfig: Path, installs: dict[str, KubeVirtInstall]):
        super().__init__(clusters, kubeconfig)
        self.kubevirt = installs

    def logs(self) -> list[tuple[str, Path]]:
        return [entry for i in self.kubevirt.values() for entry in i.logs()]


_running: list[KubeVirtClusters] = []   # for the log sections of failed tests (tests/kubevirt/conftest.py)


def component_kubeconfig(api: ApiServer, path: Path, crt: Path, key: Path) -> Path:
    """What a pod's service account token gives a component: access to its cluster as that account."""
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": api.server, "certificate-authority": str(api.ca_cert)}}],
        "users": [{"name": "u", "user": {"client-certificate": str(crt), "client-key": str(key)}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": NS}}]}))
    return path


@pytest.fixture(scope="session")
def kubevirt_clusters(kube_bin, kubevirt_bin, tmp_path_factory) -> KubeVirtClusters:
    if subprocess.run([*unshare(), "true"], capture_output=True).returncode != 0:
        _unavailable(f"KubeVirt tier: `{' '.join(unshare())}` is not permitted here (needs root or user namespaces)")
    base = tmp_path_factory.mktemp("kubevirt-clusters")
    apis = [ApiServer(name, kube_bin, base / name) for name in NAMES]
    installs: dict[str, KubeVirtInstall] = {}
    sync_ip = sync_address()
    sync_ports = dict(zip(NAMES, free_ports(sync_ip, len(NAMES))))
    try:
        for a in apis:
            a.start()
        kubeconfig = base / "kubeconfig"
        clusters = [Cluster(a.name, a, kubeconfig) for a in apis]
        for c in clusters:
            installs[c.name] = KubeVirtInstall(c, kubevirt_bin, base / c.name / "kubevirt", sync_ip, sync_ports[c.name])

        def prepare(i: KubeVirtInstall):
            i.cluster.api.wait_ready()
            i.generate()
            i.install_crds()
            i.install()
            i.components_from_deployments()
        with ThreadPoolExecutor(len(installs)) as pool:
            list(pool.map(prepare, installs.values()))
        write_kubeconfig(kubeconfig, apis)
        for i in installs.values():
            # KubeVirt's own CA, not the one clusters.Cluster made up for the standard tier
            i.cluster.kubevirt_ca_pem = i.ca_pem()
            i.ca_operator.start()
        installs["source"].trust(installs["target"])
        installs["target"].trust(installs["source"])
        deadline = time.monotonic() + 120
        for i in installs.values():   # spawn from this thread (see apiserver._die_with_parent)
            i.start("virt-api")
        for i in installs.values():
            api = i.components["virt-api"]
            wait_tls(api.ip, api.ports["virt-api"], deadline, api)
            i.publish_virt_api()
            i.install_webhooks()
        # Every other server binds its own address before a synchronization-controller binds
        # 0.0.0.0:8443 for /healthz (tests/kubevirt/README.md, known limits).
        for i in installs.values():
            i.start("virt-controller")
        for i in installs.values():
            ctl = i.components["virt-controller"]
            wait_tls(ctl.ip, ctl.ports["metrics"], deadline, ctl)
        for i in installs.values():
            i.start("virt-synchronization-controller")
        for i in installs.values():
            i.wait_leaders(deadline)
            i.start_sync_standby()
            i.update_status()
            i.kubelet.start()
        result = KubeVirtClusters(clusters, kubeconfig, installs)
        _running.append(result)
        yield result
        _running.remove(result)
    finally:
        for i in installs.values():
            i.stop()
        for a in apis:
            a.stop()


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-")
