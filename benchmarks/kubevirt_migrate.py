"""The migrate rows of benchmarks/run.py, on the KubeVirt tier (tests/kubevirt): KubeVirt's own
virt-api, virt-controller and synchronization-controller, with the played scheduler, kubelet, CDI
and virt-handler, started by the tier's own pytest fixtures (so exactly as its tests start them).

run.py runs this module with pytest in a child process and reads the JSON it writes to
$DLM_BENCH_OUT: the wall time of each `kubectl dlm migrate` process (a fresh process, as a user runs
it), when each line of its output came, and the transfer time the played libvirt took
(tests.kubevirt.handler.NETWORK.transfer_seconds). Not a test: it asserts only that the migrations
succeeded, and is collected only when run.py names it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# With the pre-flight checks, as a user runs it: they pass on the tier (its synchronization
# controllers listen on this machine's address; tests/kubevirt/test_check.py).
FLAGS = ("--context", "source", "--to-context", "target", "--timeout", "600", "--sync-timeout", "120", "-o", "plain")


# A shell notes the wall clock just before the command starts and just after it exits: this
# process runs the played controllers' threads, so its own view of the exit can lag (the GIL).
STAMPED = 'echo "@start $(date +%s.%N)"; "$@"; rc=$?; echo "@exit $(date +%s.%N)"; exit $rc'


# As cli.main exited before it skipped the teardown (cli.exit_now): for DLM_BENCH_TEARDOWN's A/B.
TEARDOWN = "import sys; from kubectl_dlm import cli; sys.exit(cli.run(sys.argv[1:]))"


PROFILED = ("import cProfile, sys; from kubectl_dlm import cli; out, sys.argv[1:] = sys.argv[1], sys.argv[2:]; "
            "cProfile.run('code = cli.run(sys.argv[1:])', out); sys.exit(code)")


TRACED = ("import sys, time, threading; from kubectl_dlm import cli, kube; t0 = time.monotonic(); orig = kube._request\n"
          "def traced(cluster, method, path, *a, **k):\n"
          "    s = time.monotonic(); r = orig(cluster, method, path, *a, **k)\n"
          "    print(f'TRACE {s - t0:7.3f} {time.monotonic() - s:6.3f} {threading.current_thread().name} {cluster.context} {method} {path}', file=sys.stderr)\n"
          "    return r\n"
          "kube._request = traced; print(f'TRACE start {time.monotonic()-t0:.3f}', file=sys.stderr); sys.exit(cli.run(sys.argv[1:]))")


def timed(cmd: list, env: dict | None = None) -> dict:
    """Run cmd (output piped): its lifetime (as the shell saw it) and when each output line arrived."""
    start = time.time()
    proc = subprocess.Popen(["bash", "-c", STAMPED, "bash", *cmd], cwd=REPO, stdin=subprocess.DEVNULL, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = [(round(time.time() - start, 3), line.rstrip("\n")) for line in proc.stdout]
    _, status, usage = os.wait4(proc.pid, 0)  # the shell's usage includes the plugin it waited for
    code = proc.returncode = os.waitstatus_to_exitcode(status)
    observed = time.time() - start
    stamps = {text.split()[0]: float(text.split()[1]) for _, text in lines if text.startswith(("@start ", "@exit "))}
    lines = [(t - (stamps["@start"] - start), text) for t, text in lines if not text.startswith("@")]
    assert code == 0, f"{' '.join(cmd)}: exit {code}\n" + "\n".join(text for _, text in lines)
    return {"seconds": round(stamps["@exit"] - stamps["@start"], 3), "observed": round(observed, 3), "lines": lines,
            "cpu": round(usage.ru_utime + usage.ru_stime, 3), "load": os.getloadavg()[0]}


# The same move by hand with kubectl, as README's "Another cluster" section tells a user to do it:
# the three phases rendered beforehand (as a reviewed bundle would be), then applied on each side with
# kubectl waiting in between, until the target migration Succeeded, KubeVirt restored the receiving VM's
# run strategy (WaitAsReceiver -> Always) and halted the source VM: where `migrate` says "succeeded".
# What `migrate` takes over this is what the plugin adds: KubeVirt's and the played parts' time is in both.
BY_HAND = """set -e
k() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
k --context target apply -f "$DIR/prepare.yaml" >/dev/null
k --context target wait "vmi/$VM" -n "$NS" --for=create --timeout=300s >/dev/null
k --context target wait "vmi/$VM" -n "$NS" --for=jsonpath='{.status.phase}'=WaitingForSync --timeout=300s >/dev/null
k --context target apply -f "$DIR/receive.yaml" >/dev/null
k --context source apply -f "$DIR/send.yaml" >/dev/null
k --context target wait "vmim/$TARGET_VMIM" -n "$NS" --for=jsonpath='{.status.phase}'=Succeeded --timeout=600s >/dev/null
k --context target wait "vm/$VM" -n "$NS" --for=jsonpath='{.spec.runStrategy}'=Always --timeout=300s >/dev/null
k --context source wait "vm/$VM" -n "$NS" --for=jsonpath='{.spec.runStrategy}'=Halted --timeout=300s >/dev/null
"""


def by_hand(kubevirt, ns: str, tmp: Path) -> dict:
    """Render the phases (not timed), then time BY_HAND."""
    from tests.harness.clusters import kubectl_path

    kubeconfig = str(kubevirt.clusters.kubeconfig)
    for phase in ("prepare", "receive", "send"):
        done = subprocess.run([sys.executable, "-m", "kubectl_dlm", "render", "vm1", "-n", ns, "--kubeconfig", kubeconfig,
                               "--context", "source", "--to-context", "target", "--phase", phase],
                              cwd=REPO, capture_output=True, text=True, check=True)
        (tmp / f"{phase}.yaml").write_text(done.stdout)
    from ruamel.yaml import YAML

    [target_vmim] = [d["metadata"]["name"] for d in YAML(typ="safe").load_all((tmp / "receive.yaml").read_text())
                     if d and d["kind"] == "VirtualMachineInstanceMigration"]
    env = dict(os.environ, KUBECTL=kubectl_path(), KUBECONFIG_FILE=kubeconfig, DIR=str(tmp), NS=ns, VM="vm1",
               TARGET_VMIM=target_vmim)
    return timed(["bash", "-c", BY_HAND], env)


def test_migrate_rows(kubevirt, tmp_path):
    from tests.kubevirt.tier import live_migratable, vm_manifest

    batch, parallel = int(os.environ["DLM_BENCH_BATCH"]), int(os.environ["DLM_BENCH_PARALLEL"])
    kubevirt.faults.transfer_seconds = float(os.environ["DLM_BENCH_TRANSFER"])
    profile = os.environ.get("DLM_BENCH_PROFILE")  # a directory: each one-VM run under cProfile there
    dlm = [sys.executable, "-m", "kubectl_dlm", "migrate", "--kubeconfig", str(kubevirt.clusters.kubeconfig)]

    def start(names: list) -> str:
        ns = kubevirt.namespaces("source", "target")
        for name in names:  # all at once, then wait: the controllers start them side by side
            vm = vm_manifest(name)
            vm["metadata"]["labels"] = {"app": "batch"}
            kubevirt.create("source", "vm", ns, vm)
        for name in names:
            kubevirt.wait_for("source", "vmi", ns, name, live_migratable, 300, "VMI Running and LiveMigratable")
        return ns

    out = {"transfer": kubevirt.faults.transfer_seconds, "one": [], "load_before": os.getloadavg()[0]}
    for i in range(int(os.environ.get("DLM_BENCH_ONE", "2"))):
        ns = start(["vm1"])
        profiled = dlm
        if profile:
            # cli.run, not python -m: the command exits with os._exit (cli.exit_now), before cProfile writes
            profiled = [sys.executable, "-c", PROFILED, f"{profile}/one-{i}.prof", *dlm[3:]]
        elif os.environ.get("DLM_BENCH_TRACE"):  # a line on stderr per API request, with its start and duration
            profiled = [sys.executable, "-c", TRACED, *dlm[3:]]
        elif os.environ.get("DLM_BENCH_TEARDOWN") and i % 2:  # A/B: exit through the interpreter's teardown
            profiled = [sys.executable, "-c", TEARDOWN, *dlm[3:]]
        out["one"].append(timed([*profiled, "vm1", "-n", ns, *FLAGS]))
        if not profile:  # alternately, on a fresh VM: the same move by hand
            hand = tmp_path / f"by-hand-{i}"
            hand.mkdir()
            out.setdefault("by_hand", []).append(by_hand(kubevirt, start(["vm1"]), hand))
    ns = start([f"vm{i}" for i in range(batch)])
    out["batch"] = timed([*dlm, "-l", "app=batch", "-n", ns, "--parallel", str(parallel), *FLAGS])
    out["load_after"] = os.getloadavg()[0]
    Path(os.environ["DLM_BENCH_OUT"]).write_text(json.dumps(out))
