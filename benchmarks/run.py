#!/usr/bin/env python3
"""kubectl-dlm benchmarks: startup time, render time per VM, API requests per VM.

    python benchmarks/run.py                 # everything; the live part needs the test API server
    python benchmarks/run.py --quick         # fewer repeats
    python benchmarks/run.py --no-live       # skip the live render

* startup: `python -m kubectl_dlm --help` in a fresh interpreter, median of --repeat runs.
* render -f: a generated export of N running VMs (each: a DataVolume root disk on Block, a PVC
  data disk, a cloud-init Secret, an SSH key Secret, a VMI) rendered by the real CLI in a fresh
  interpreter (startup included, as a user sees it) and in-process (the planner and renderer
  alone); both divided by N.
* live: the same VMs created on the source test cluster (tests/harness: mini-kube-apiserver with
  the KubeVirt CRDs), rendered from the cluster with --to-context target; the `requests` counters
  of kube.Cluster give the API requests per VM. Skipped, with the reason, when the test API
  server is not built (`bash tests/infra/build.sh`, or MINI_KUBE_BIN).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

NS, DST = "bench", "bench-dst"
CONNECT = "192.0.2.20:9185"


# --- a generated export ---------------------------------------------------------------------------

def vm_objects(i: int, namespace: str = NS) -> List[dict]:
    name = f"vm-{i:04d}"
    uid = f"00000000-0000-4000-8000-{i:012d}"
    labels = {"app": "bench", "shard": str(i % 10)}
    meta = lambda n, **kw: dict({"name": n, "namespace": namespace}, **kw)  # noqa: E731
    pvc = lambda n, mode, size, cap: {  # noqa: E731
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta(n),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                 "storageClassName": "fast-block" if mode == "Block" else "standard", "volumeMode": mode},
        "status": {"phase": "Bound", "capacity": {"storage": cap}}}
    vm = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
          "metadata": meta(name, uid=uid, labels=labels, resourceVersion="1", generation=1,
                           annotations={"kubevirt.io/latest-observed-api-version": "v1"}),
          "spec": {"runStrategy": "Always",
                   "dataVolumeTemplates": [{"metadata": {"name": f"{name}-root"}, "spec": {
                       "source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "20Gi"}},
                                                            "storageClassName": "fast-block", "volumeMode": "Block"}}}],
                   "template": {"metadata": {"labels": labels}, "spec": {
                       "accessCredentials": [{"sshPublicKey": {"source": {"secret": {"secretName": f"{name}-ssh"}},
                                                               "propagationMethod": {"noCloud": {}}}}],
                       "domain": {"cpu": {"cores": 2}, "memory": {"guest": "2Gi"}, "devices": {
                           "disks": [{"name": n, "disk": {"bus": "virtio"}} for n in ("root", "data", "cloudinit")],
                           "interfaces": [{"name": "default", "masquerade": {}}]}},
                       "networks": [{"name": "default", "pod": {}}],
                       "volumes": [{"name": "root", "dataVolume": {"name": f"{name}-root"}},
                                   {"name": "data", "persistentVolumeClaim": {"claimName": f"{name}-data"}},
                                   {"name": "cloudinit", "cloudInitNoCloud": {"secretRef": {"name": f"{name}-ci"}}}]}}}}
    vmi = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "metadata": meta(name, uid=f"1{uid[1:]}"),
           "spec": {"domain": {"devices": {}, "firmware": {"uuid": f"2{uid[1:]}"}}},
           "status": {"phase": "Running", "conditions": [{"type": "LiveMigratable", "status": "True"},
                                                         {"type": "StorageLiveMigratable", "status": "True"}],
                      "interfaces": [{"name": "default", "mac": f"02:00:00:{i // 65536 % 256:02x}:{i // 256 % 256:02x}:{i % 256:02x}"}]}}
    dv = {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": meta(f"{name}-root"),
          "spec": vm["spec"]["dataVolumeTemplates"][0]["spec"], "status": {"phase": "Succeeded", "claimName": f"{name}-root"}}
    secret = lambda n, key: {"apiVersion": "v1", "kind": "Secret", "metadata": meta(n), "type": "Opaque",  # noqa: E731
                             "data": {key: "I2Nsb3VkLWNvbmZpZwo="}}
    return [vm, vmi, dv, pvc(f"{name}-root", "Block", "20Gi", "21Gi"), pvc(f"{name}-data", "Filesystem", "50Gi", "53Gi"),
            secret(f"{name}-ci", "userdata"), secret(f"{name}-ssh", "key")]


def write_export(n: int, path: Path) -> Path:
    import json

    # JSON is YAML: a faster dump than ruamel for 3500 objects, and the same input to the reader.
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List",
                                "items": [o for i in range(n) for o in vm_objects(i)]}))
    return path


# --- measurements ---------------------------------------------------------------------------------

def timed(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_cli(args: List[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "kubectl_dlm", *args], cwd=REPO, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"kubectl dlm {' '.join(args)} failed:\n{proc.stderr.decode()}")


def render_in_process(export: Path) -> None:
    from kubectl_dlm import bundle, pipeline

    result = pipeline.run(pipeline.Request(filename=str(export), to_namespace=DST, connect_url=CONNECT))
    bundle.stream(result.docs, result.plan)


def startup(repeat: int) -> List[Tuple[str, str]]:
    help_s = timed(lambda: run_cli(["--help"]), repeat)
    bare_s = timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), repeat)
    return [("startup: kubectl dlm --help", f"{help_s * 1000:.0f} ms"),
            ("  of which the Python interpreter", f"{bare_s * 1000:.0f} ms")]


def render_file(counts: List[int], repeat: int, tmp: Path) -> List[Tuple[str, str]]:
    rows = []
    for n in counts:
        export = write_export(n, tmp / f"export-{n}.json")
        reps = repeat if n < 100 else max(1, repeat // 3)
        cli_s = timed(lambda: run_cli(["render", "-f", str(export), "--to-namespace", DST, "--connect-url", CONNECT]), reps)
        render_in_process(export)  # warm imports and template cache: the in-process figure is the steady state
        core_s = timed(lambda: render_in_process(export), reps)
        rows.append((f"render -f, {n} VM{'s' if n > 1 else ''}: CLI total", f"{cli_s * 1000:.0f} ms"))
        rows.append((f"  per VM (CLI, startup included)", f"{cli_s / n * 1000:.1f} ms"))
        rows.append((f"  per VM (in-process: read, plan, render)", f"{core_s / n * 1000:.1f} ms"))
    return rows


# --- live -----------------------------------------------------------------------------------------

def live_clusters(tmp: Path):
    """Two test clusters from tests/harness, or (None, reason)."""
    try:
        from tests.harness import clusters as harness
    except ImportError as exc:
        return None, f"tests/harness is not importable ({exc})"
    env = os.environ.get("MINI_KUBE_BIN")
    bin_dir = Path(env) if env else harness._cached_build()
    if bin_dir is None or not harness._has_binaries(bin_dir):
        return None, "the test API server is not built: run `bash tests/infra/build.sh` (or set MINI_KUBE_BIN)"
    shared = harness.shared_dir()
    crds = sorted((shared / "crds/kubevirt-main/full").glob("*.crd.yaml"))
    crds += [shared / "crds/kubevirt-main/cdi.kubevirt.io_datavolumes.crd.yaml", *sorted(harness.HARNESS_CRDS.glob("*.yaml"))]
    if len(crds) < 10:
        return None, f"KubeVirt CRDs not found under {shared}/crds: set DLM_SHARED_DIR"
    apis = [harness.ApiServer(name, bin_dir, tmp / name) for name in harness.NAMES]
    for a in apis:
        a.start()
    for a in apis:
        a.wait_ready()
        a.install_crds(crds)
    kubeconfig = tmp / "kubeconfig"
    harness.write_kubeconfig(kubeconfig, apis)
    found = harness.Clusters([harness.Cluster(a.name, a, kubeconfig) for a in apis], kubeconfig)
    for c in found:
        harness.install_kubevirt(c)
    return (found, apis), ""


def create(cluster, obj: dict) -> None:
    from kubectl_dlm.model import KINDS

    group, version, plural, _ = KINDS[obj["kind"]]
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    body = {k: v for k, v in obj.items()}
    body["metadata"] = {k: v for k, v in obj["metadata"].items() if k not in ("uid", "resourceVersion", "generation")}
    created = cluster.request("POST", f"{base}/namespaces/{obj['metadata']['namespace']}/{plural}", body)
    if "status" in obj and obj["kind"] not in ("VirtualMachineInstance", "Secret"):  # VMI: no status subresource
        cluster.request("PATCH", f"{base}/namespaces/{obj['metadata']['namespace']}/{plural}/{created['metadata']['name']}/status",
                        {"status": obj["status"]}, content_type="application/merge-patch+json")


def live(counts: List[int], tmp: Path) -> List[Tuple[str, str]]:
    try:
        made, reason = live_clusters(tmp)
    except Exception as exc:  # a broken build or a port clash: say so, keep the other figures
        made, reason = None, f"the test clusters did not start: {str(exc).splitlines()[0]}"
    if made is None:
        return [("live render (API requests per VM)", f"skipped: {reason}")]
    found, apis = made
    rows = []
    try:
        from kubectl_dlm import pipeline

        for n in counts:
            ns = f"{NS}-{n}"
            found.source.create_namespace(ns)
            found.target.create_namespace(DST)  if n == counts[0] else None
            for i in range(n):
                for obj in vm_objects(i, ns):
                    create(found.source, obj)
            request = pipeline.Request(selector="app=bench", namespace=ns, kubeconfig=str(found.kubeconfig),
                                       context="source", to_context="target", to_namespace=DST)
            start = time.perf_counter()
            result = pipeline.run(request)
            elapsed = time.perf_counter() - start
            assert len(result.plan.vms) == n, len(result.plan.vms)
            src, dst = result.clusters["source"].requests, result.clusters["target"].requests
            rows.append((f"live render -l, {n} VM{'s' if n > 1 else ''}: API requests", f"{src} source + {dst} target"))
            rows.append(("  API requests per VM", f"{(src + dst) / n:.2f}"))
            rows.append(("  time per VM (connect, read, plan, render)", f"{elapsed / n * 1000:.1f} ms"))
    finally:
        for a in apis:
            a.stop()
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="runs per figure (median); 500-VM renders use a third")
    parser.add_argument("--quick", action="store_true", help="3 runs per figure")
    parser.add_argument("--no-live", action="store_true", help="skip the live render against the test API server")
    parser.add_argument("--vms", type=int, nargs="+", default=[1, 500], help="batch sizes for render -f")
    parser.add_argument("--live-vms", type=int, nargs="+", default=[1, 50], help="batch sizes for the live render")
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else args.repeat
    rows: List[Tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="dlm-bench-") as tmp:
        rows += startup(repeat)
        rows += render_file(args.vms, repeat, Path(tmp))
        if args.no_live:
            rows.append(("live render (API requests per VM)", "skipped: --no-live"))
        else:
            with contextlib.redirect_stderr(io.StringIO()):
                rows += live(args.live_vms, Path(tmp))
    width = max(len(k) for k, _ in rows)
    print(f"kubectl-dlm benchmarks (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {repeat})")
    print(f"{'what'.ljust(width)}  value")
    print(f"{'-' * width}  {'-' * 24}")
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
