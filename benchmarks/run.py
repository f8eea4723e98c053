#!/usr/bin/env python3
"""kubectl-dlm benchmarks, side by side with a reference: medians, ratios and goals in one table.

    python benchmarks/run.py                 # everything (make bench); live rows need the test API server
    python benchmarks/run.py --quick         # 3 runs per row, live batches of 1 and 500 VMs
    python benchmarks/run.py --no-live       # only the rows that need no API server

Every timed row runs the reference command and ours alternately, each in a fresh process, and
reports both medians and the median of the per-pair ratios: on a loaded machine both slow down
together, so the ratio stays meaningful when the absolute times do not. benchmarks/README.md
explains each row. Live rows run against two test clusters of tests/harness (mini-kube-apiserver
with the KubeVirt CRDs); migrate rows run on the KubeVirt tier of tests/kubevirt (KubeVirt's own
controllers, `bash tests/infra/build-kubevirt.sh`, or KUBEVIRT_BIN). Without the test API server
(`bash tests/infra/build.sh`, or MINI_KUBE_BIN) or KubeVirt's build they say "skipped" and why.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

NS, DST = "bench", "bench-dst"
CONNECT = "192.0.2.20:9185"
PY = sys.executable
DLM = [PY, "-m", "kubectl_dlm"]
KINDS_KUBECTL_GETS = "vm,vmi,dv,pvc,secret,cm"
# The client floor of a live render of one VM: import the kubernetes client, load the kubeconfig,
# one GET (of the VM). Every live render pays at least this.
CLIENT_FLOOR = ("import sys\nfrom kubernetes import client, config\n"
                "api = config.new_client_from_config(config_file=sys.argv[1], context='source')\n"
                "client.CustomObjectsApi(api).get_namespaced_custom_object("
                "'kubevirt.io', 'v1', sys.argv[2], 'virtualmachines', 'vm-0000')\n")
IMPORTS_FLOOR = "import click, jinja2, ruamel.yaml"


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


# --- running and timing ---------------------------------------------------------------------------

class BenchError(Exception):
    pass


@dataclass
class Sample:
    seconds: float
    rss_mb: float  # peak resident memory of the process
    cpu: float = 0.0  # user + system CPU seconds of the process (less sensitive to load than wall time)


def measure(cmd: Sequence[str]) -> Sample:
    """Run cmd in a fresh process, output discarded; wall time and peak RSS (wait4's rusage)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise BenchError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): "
                             f"{err.read().decode(errors='replace').strip()[-600:]}")
    return Sample(seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


@dataclass
class Pair:
    ours: Sample
    reference: Sample
    ratio: float  # median of ours/reference over the pairs
    rss_ratio: float
    cpu_ratio: float


def side_by_side(ours: Sequence[str], reference: Sequence[str], repeat: int) -> Pair:
    """Reference and ours alternately (which goes first alternates too), `repeat` pairs."""
    mine: List[Sample] = []
    theirs: List[Sample] = []
    for i in range(repeat):
        if i % 2:
            mine.append(measure(ours))
            theirs.append(measure(reference))
        else:
            theirs.append(measure(reference))
            mine.append(measure(ours))

    def median(samples: List[Sample]) -> Sample:
        return Sample(statistics.median(s.seconds for s in samples), statistics.median(s.rss_mb for s in samples),
                      statistics.median(s.cpu for s in samples))

    def ratio(field: str) -> float:
        return statistics.median(getattr(m, field) / getattr(t, field) for m, t in zip(mine, theirs))

    return Pair(median(mine), median(theirs), ratio("seconds"), ratio("rss_mb"), ratio("cpu"))


@dataclass
class Row:
    what: str
    ours: str
    reference: str = "-"
    ratio: str = "-"
    goal: str = "-"


def secs(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def timed_row(what: str, pair: Pair, reference_name: str, goal: str) -> Row:
    """Wall time, and in brackets CPU time (what the process itself spent, whatever the load)."""
    return Row(what, f"{secs(pair.ours.seconds)} (CPU {secs(pair.ours.cpu)})",
               f"{reference_name}: {secs(pair.reference.seconds)} (CPU {secs(pair.reference.cpu)})",
               f"{pair.ratio:.2f}x (CPU {pair.cpu_ratio:.2f}x)", goal)


# --- rows without an API server -------------------------------------------------------------------

def startup_rows(repeat: int) -> List[Row]:
    help_pair = side_by_side([*DLM, "--help"], [PY, "-c", "pass"], repeat)
    example = side_by_side([*DLM, "render", "--example"], [PY, "-c", IMPORTS_FLOOR], repeat)
    return [timed_row("startup: kubectl dlm --help", help_pair, "python -c pass", "-"),
            timed_row("render --example", example, f'python -c "{IMPORTS_FLOOR}"', "<= 1.5x")]


def file_rows(counts: List[int], repeat: int, tmp: Path) -> List[Row]:
    rows = []
    for n in counts:
        export = write_export(n, tmp / f"export-{n}.json")
        times = [measure([*DLM, "render", "-f", str(export), "--to-namespace", DST, "--connect-url", CONNECT]).seconds
                 for _ in range(repeat if n < 100 else max(1, repeat // 3))]
        t = statistics.median(times)
        rows.append(Row(f"render -f of a {n}-VM export (JSON)", f"{secs(t)} ({t / n * 1000:.1f} ms/VM)"))
    return rows


# --- live rows ------------------------------------------------------------------------------------

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
    try:
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
    except BaseException:
        for a in apis:
            a.stop()
        raise
    return (found, apis), ""


def create(cluster, obj: dict) -> None:
    from kubectl_dlm.model import KINDS

    group, version, plural, _ = KINDS[obj["kind"]]
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    body = dict(obj)
    body["metadata"] = {k: v for k, v in obj["metadata"].items() if k not in ("uid", "resourceVersion", "generation")}
    created = cluster.request("POST", f"{base}/namespaces/{obj['metadata']['namespace']}/{plural}", body)
    if "status" in obj and obj["kind"] not in ("VirtualMachineInstance", "Secret"):  # VMI: no status subresource
        cluster.request("PATCH", f"{base}/namespaces/{obj['metadata']['namespace']}/{plural}/{created['metadata']['name']}/status",
                        {"status": obj["status"]}, content_type="application/merge-patch+json")


def populate(cluster, namespace: str, n: int) -> None:
    cluster.create_namespace(namespace)
    with ThreadPoolExecutor(8) as pool:  # the API server does the work; 8 requests in flight keep it busy
        list(pool.map(lambda i: [create(cluster, o) for o in vm_objects(i, namespace)], range(n)))


def kubectl() -> Optional[str]:
    try:
        from tests.harness.clusters import kubectl_path

        path = kubectl_path()
    except ImportError:
        path = "kubectl"
    return shutil.which(path)


def live_rows(counts: List[int], repeat: int, tmp: Path) -> List[Row]:
    try:
        made, reason = live_clusters(tmp)
    except Exception as exc:  # a broken build or a port clash: say so, keep the other rows
        made, reason = None, f"the test clusters did not start: {str(exc).splitlines()[0]}"
    if made is None:
        return [Row("live render (one VM, a batch)", f"skipped: {reason}")]
    found, apis = made
    try:
        return guarded("live render (one VM, a batch)", lambda: live_render_rows(found, counts, repeat))
    finally:
        for a in apis:
            a.stop()


def guarded(what: str, measure_rows) -> List[Row]:
    """The rows, or one row that says why they could not be measured; the other rows still print."""
    try:
        return measure_rows()
    except Exception as exc:
        return [Row(what, f"failed: {str(exc).splitlines()[0][:200]}")]


def live_render_rows(found, counts: List[int], repeat: int) -> List[Row]:
    kubeconfig = str(found.kubeconfig)
    found.target.create_namespace(DST)
    tool = kubectl()
    rows: List[Row] = []
    for n in counts:
        ns = f"{NS}-{n}"
        populate(found.source, ns, n)
        target = ["-n", ns, "--kubeconfig", kubeconfig, "--context", "source", "--to-context", "target",
                  "--to-namespace", DST]
        if n == 1:
            pair = side_by_side([*DLM, "render", "vm-0000", *target], [PY, "-c", CLIENT_FLOOR, kubeconfig, ns], repeat)
            rows.append(timed_row("live render VM (1 VM)", pair, "client floor", "<= 1.3x"))
        else:
            label = f"live render -l, {n} VMs"
            ours = [*DLM, "render", "-l", "app=bench", *target]
            if tool is None:
                t = statistics.median(measure(ours).seconds for _ in range(max(1, repeat // 3)))
                rows.append(Row(label, secs(t), "skipped: no kubectl on PATH"))
                continue
            pair = side_by_side(ours, [tool, "get", KINDS_KUBECTL_GETS, *target[:6], "-o", "yaml"],
                                min(repeat, max(3, repeat // 3)))
            row = timed_row(label, pair, "kubectl get -o yaml", "<= 2x")
            row.ours += f", {pair.ours.seconds / n * 1000:.1f} ms/VM"
            rows.append(row)
            rows.append(Row("  peak memory", f"{pair.ours.rss_mb:.0f} MB", f"kubectl: {pair.reference.rss_mb:.0f} MB",
                            f"{pair.rss_ratio:.2f}x", "< 2x" if n >= 2000 else "-"))
        rows.append(Row("  API requests", requests_per_render(found, ns, n)))
    return rows


def requests_per_render(found, namespace: str, n: int) -> str:
    """One render in this process, for kube.Cluster's request counters (not timed)."""
    from kubectl_dlm import pipeline

    request = pipeline.Request(selector="app=bench", namespace=namespace, kubeconfig=str(found.kubeconfig),
                               context="source", to_context="target", to_namespace=DST)
    with contextlib.redirect_stderr(io.StringIO()):
        result = pipeline.run(request)
    if len(result.plan.vms) != n:
        raise BenchError(f"rendered {len(result.plan.vms)} VMs of {n}")
    src, dst = result.clusters["source"].requests, result.clusters["target"].requests
    return f"{src} source + {dst} target ({(src + dst) / n:.2f} per VM)"


# --- migrate, on the KubeVirt tier ----------------------------------------------------------------

KUBEVIRT_MODULE = REPO / "benchmarks" / "kubevirt_migrate.py"
# The KubeVirt tier's pytest plugins (tests/conftest.py loads them for the tests): its fixtures start
# the clusters, KubeVirt's components and the played parts exactly as for the tier's own tests.
TIER_PLUGINS = ("tests.harness.clusters", "tests.harness.kubevirt", "tests.kubevirt.fixtures")


def migrate_rows(batch: int, transfer: float, parallel: int, tmp: Path) -> List[Row]:
    """`kubectl dlm migrate` on KubeVirt's own controllers (benchmarks/kubevirt_migrate.py, run by
    pytest in a child process), or one row that says why not."""
    out = tmp / "migrate.json"
    env = dict(os.environ, DLM_BENCH_OUT=str(out), DLM_BENCH_BATCH=str(batch), DLM_BENCH_TRANSFER=str(transfer),
               DLM_BENCH_PARALLEL=str(parallel))
    plugins = [arg for name in TIER_PLUGINS for arg in ("-p", name)]
    proc = subprocess.run([PY, "-m", "pytest", str(KUBEVIRT_MODULE), *plugins, "-c", str(REPO / "setup.cfg"),
                           "--rootdir", str(REPO), "-q", "-rs", "-x", "-p", "no:cacheprovider", "--basetemp", str(tmp / "kv")],
                          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not out.exists():
        skipped = [line.split(": ", 1)[-1] for line in proc.stdout.splitlines() if line.startswith("SKIPPED")]
        if proc.returncode == 0 and skipped:
            return [Row("migrate (time over the transfer)", f"skipped: {skipped[0].strip()}")]
        failed = [line for line in proc.stdout.splitlines() if line.startswith(("E ", "FAILED", "ERROR"))]
        raise BenchError(f"the KubeVirt tier run failed (exit {proc.returncode}): "
                         + " | ".join(failed[:3] or proc.stdout.strip().splitlines()[-3:]))
    import json

    got = json.loads(out.read_text())
    transfer = got["transfer"]
    one = [run["seconds"] for run in got["one"]]
    over = statistics.median(one) - transfer
    wall = got["batch"]["seconds"]
    rounds = math.ceil(batch / parallel)
    load = f"load {got['load_before']:.1f} -> {got['load_after']:.1f}"
    cpu = statistics.median(run["cpu"] for run in got["one"])
    # the same move by hand with kubectl (kubevirt_migrate.BY_HAND), run alternately with ours
    hand = [run["seconds"] for run in got.get("by_hand", [])]
    by_hand, batch_by_hand = [], []
    if hand:
        ours, theirs = statistics.median(one), statistics.median(hand)
        by_hand = [Row("migrate 1 VM: whole move", secs(ours), f"by hand with kubectl apply/wait: {secs(theirs)}",
                       f"{statistics.median(o / t for o, t in zip(one, hand)):.2f}x", "-"),
                   Row("  what migrate adds over the move by hand", secs(ours - theirs), "-", "-", "< 2 s")]
        batch_by_hand = [Row(f"  the same against {rounds} move{'s' if rounds > 1 else ''} by hand", secs(wall),
                             f"{rounds} x {secs(theirs)}: {secs(rounds * theirs)}", f"{wall / (rounds * theirs):.2f}x", "-")]
    return [Row("migrate 1 VM: time over the transfer", f"{secs(over)} (CPU {secs(cpu)}; median of {len(one)}; {load})",
                f"transfer: {secs(transfer)}", "-", "-" if hand else "< 2 s"),
            *by_hand,
            Row(f"migrate {batch} VMs --parallel {parallel}", f"{secs(wall)} (CPU {secs(got['batch']['cpu'])})",
                f"{rounds} transfer{'s' if rounds > 1 else ''}: {secs(rounds * transfer)}", f"{wall / (rounds * transfer):.2f}x",
                "about 1x"),
            Row("  time over the transfers, per VM", secs((wall - rounds * transfer) / batch), "-", "-", "< 2 s"),
            *batch_by_hand,
            Row("  after the last output line", secs(statistics.median(
                run["seconds"] - (run["lines"][-1][0] if run["lines"] else 0) for run in got["one"])),
                "-", "-", "-")]


# --- main -----------------------------------------------------------------------------------------

def table(rows: List[Row]) -> str:
    head = Row("what", "kubectl-dlm", "reference", "ratio", "goal")
    cols = list(zip(*[(r.what, r.ours, r.reference, r.ratio, r.goal) for r in [head, *rows]]))
    widths = [max(len(c) for c in col) for col in cols]
    lines = []
    for i, r in enumerate([head, *rows]):
        cells = (r.what, r.ours, r.reference, r.ratio, r.goal)
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="pairs per row (median); live batches use a third (at least 3)")
    parser.add_argument("--quick", action="store_true", help="3 pairs per row, live batches of 1 and 500 VMs")
    parser.add_argument("--no-live", action="store_true", help="skip the rows that need the test API server")
    parser.add_argument("--no-migrate", action="store_true", help="skip the migrate rows (the KubeVirt tier)")
    parser.add_argument("--vms", type=int, nargs="*", default=[500], help="export sizes for render -f")
    parser.add_argument("--live-vms", type=int, nargs="+", default=None,
                        help="batch sizes for the live render (default 1 500 2000; --quick: 1 500); 1 is the client-floor "
                             "row; 0 alone: no live render rows")
    parser.add_argument("--migrate-vms", type=int, default=10, help="batch size of the migrate --parallel row")
    parser.add_argument("--parallel", type=int, default=3, help="--parallel of the migrate batch row")
    parser.add_argument("--transfer-seconds", type=float, default=5.0,
                        help="the played transfer time of one VM (tests.kubevirt.handler.NETWORK.transfer_seconds)")
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else args.repeat
    live_vms = args.live_vms or ([1, 500] if args.quick else [1, 500, 2000])
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    # Installed kubectl-dlm runs from bytecode (pip compiles it; the release build freezes it): so
    # do the timed runs here, also where PYTHONDONTWRITEBYTECODE keeps a checkout from writing it.
    import compileall

    compileall.compile_dir(str(REPO / "kubectl_dlm"), quiet=1)
    rows: List[Row] = []
    with tempfile.TemporaryDirectory(prefix="dlm-bench-") as tmp:
        rows += startup_rows(repeat)
        rows += file_rows(args.vms, repeat, Path(tmp))
        if args.no_live:
            rows.append(Row("live render (one VM, a batch)", "skipped: --no-live"))
            rows.append(Row("migrate (time over the transfer)", "skipped: --no-live"))
        else:
            if args.live_vms != [0]:
                with contextlib.redirect_stderr(io.StringIO()):
                    rows += live_rows(live_vms, repeat, Path(tmp))
            if args.no_migrate:
                rows.append(Row("migrate (time over the transfer)", "skipped: --no-migrate"))
            else:
                rows += guarded("migrate (time over the transfer)", lambda: migrate_rows(
                    args.migrate_vms, args.transfer_seconds, args.parallel, Path(tmp)))
    print(f"kubectl-dlm benchmarks: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}, {repeat} pairs per row (median), "
          f"{time.monotonic() - started:.0f} s")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
