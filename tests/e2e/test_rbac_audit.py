"""`kubectl dlm rbac` is complete and minimal, judged from what the plugin really asks the API servers.

Both test clusters write k8s.io/apiserver's audit log (tests/harness/apiserver.py). Each test prints
the rules for a move, runs the plugin's commands for that move (trust, check, render, a migrate that
is cancelled then cleaned up, migrate with --retire-source and --parallel auto, or render + apply with
a tuning flag (a MigrationPolicy of its own), status, verify, report, cleanup, cancel, retire
--delete-vm --delete-disks), then takes every request whose User-Agent is the plugin's and judges it with Kubernetes' RBAC rule matching
(tests/harness/rbac_authorizer.py) against the rules printed for that cluster: every request must be
allowed, and every rule (verb x resource) must be used by some request, unless CA_ALREADY_MERGED
excuses it, with the reason. The cancelled migration transfers long enough for progress to be read
through the pod proxy from the played virt-handler pod. The clusters are the KubeVirt tier's
(tests/kubevirt: KubeVirt's own virt-api, virt-controller and synchronization-controller).
"""
from __future__ import annotations

import subprocess
import sys
import time

from ruamel.yaml import YAML

from kubectl_dlm import errors
from tests.harness.audit import AuditWindow
from tests.harness.rbac_authorizer import allowed_by, atoms, bootstrap_grants, grants, used_atoms
from tests.kubevirt.tier import vm_manifest
from tests.test_trust_cluster import untrusted  # noqa: F401  (a fixture)

FOLLOW = ("--sync-timeout", "60", "--timeout", "120")
SUBJECT = {"kind": "ServiceAccount", "name": "migrator", "namespace": "gitops"}
PLUGIN = "kubectl-dlm/"


def vm_with_secret_and_configmap(cluster, ns: str):
    """vm1 with a cloud-init Secret and a ConfigMap disk: the rules for copying both are printed."""
    vm = vm_manifest("vm1", data_volume=True)
    spec = vm["spec"]["template"]["spec"]
    spec["domain"]["devices"]["disks"] += [{"name": "cloudinit", "disk": {"bus": "virtio"}},
                                           {"name": "config", "disk": {"bus": "virtio"}}]
    spec["volumes"] += [{"name": "cloudinit", "cloudInitNoCloud": {"secretRef": {"name": "vm1-userdata"}}},
                        {"name": "config", "configMap": {"name": "vm1-config"}}]
    cluster.request("POST", f"/api/v1/namespaces/{ns}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "vm1-config"}, "data": {"motd": "hello"}})
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vm1-userdata"}, "type": "Opaque",
              "data": {"userdata": "I2Nsb3VkLWNvbmZpZwo="}}
    return vm, [secret]


def printed_rules(dlm, *args) -> dict:
    """side -> the documents `kubectl dlm rbac` prints for that cluster."""
    out = {}
    for side in ("source", "target"):
        code, text, err = dlm("rbac", *args, "--serviceaccount", "gitops:migrator", "--side", side)
        assert code == errors.OK, err
        out[side] = [d for d in YAML(typ="safe").load_all(text) if d]
    return out


def judge(requests, documents):
    """(requests no rule allows, atoms of the printed rules no request used)."""
    granted = grants(documents, SUBJECT)
    everyone = bootstrap_grants()
    denied, used = [], set()
    for request in requests:
        hits = allowed_by(request, granted)
        if hits is None:
            if allowed_by(request, everyone) is None:
                denied.append(request)
            continue
        for grant in hits:
            used |= used_atoms(request, grant)
    unused = {a for g in granted for a in atoms(g)} - used
    return denied, unused


# Printed rules a run may leave unused, each with the reason. Keep them short and true.
CA_ALREADY_MERGED = {(side, "watch", "", "configmaps"):
                     "trust watches kubevirt-ca only while virt-operator has not merged the peer's CA yet: the "
                     "played operator (tests/harness/kubevirt_ca.py) may be done before the first look"
                     for side in ("source", "target")}


def assert_exactly_what_is_printed(windows, rules, unreached):
    """Every request of the plugin allowed; every printed rule used, or named in `unreached`."""
    for side, window in windows.items():
        requests = window.requests(PLUGIN)
        assert requests, f"no request of the plugin in the audit log of the {side} cluster"
        denied, unused = judge(requests, rules[side])
        assert not denied, f"`kubectl dlm rbac` does not grant what the plugin did on the {side} cluster:\n" + \
            "\n".join(sorted({r.describe() for r in denied}))
        excused = {a for a in unused if (side, a[2], a[3], a[4]) in unreached}
        assert unused == excused, f"rules printed for the {side} cluster that no request used:\n" + \
            "\n".join(f"{role} rule {i}: {verb} {resource}{'.' + group if group else ''}"
                      for role, i, verb, group, resource in sorted(unused - excused))
        printed = {(side, a[2], a[3], a[4]) for g in grants(rules[side], SUBJECT) for a in atoms(g)}
        stale = {k for k in unreached if k[0] == side} - printed
        assert not stale, f"the excused list names rules that are not printed any more: {stale}"


def cancel_then_clean_up(kubevirt, dlm, where, sending: tuple, receiving: tuple, tuning=()):
    """A migration is cancelled half-way (`cancel` deletes both VMIMs), then `cleanup` removes what
    it left on the target: the delete rules, reached for sure (a failed attempt would not do: KubeVirt
    may delete a VMIM whose VMI is gone before cleanup does, migration controller MC:398-407)."""
    clusters = kubevirt.clusters
    kubevirt.faults.transfer_seconds = 60
    command = [sys.executable, "-m", "kubectl_dlm", "migrate", "vm1", *where, *tuning, *FOLLOW, "-o", "plain",
               "--kubeconfig", str(clusters.kubeconfig)]
    migrating = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        side, ns = sending
        path = f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstancemigrations"
        deadline = time.monotonic() + 60
        while not any((m.get("status") or {}).get("phase") == "Running"
                      for m in clusters.by_name(side).request("GET", path)["items"]):
            assert time.monotonic() < deadline and migrating.poll() is None, migrating.communicate()[0]
            time.sleep(0.2)
        run(dlm, [(("cancel", "vm1", *where), errors.OK)])
        output = migrating.communicate(timeout=60)[0]
    finally:
        migrating.kill()
        kubevirt.faults.transfer_seconds = 1
    assert migrating.returncode == errors.CANCELLED, output
    run(dlm, [(("cleanup", "vm1", *where), errors.OK)])
    side, ns = receiving
    for kind, name in (("vm", "vm1"), ("dv", "vm1-disk"), ("pvc", "vm1-disk")):
        kubevirt.wait_gone(side, kind, ns, name)  # the next attempt needs the names


def run(dlm, steps):
    for args, expected in steps:
        code, out, err = dlm(*args)
        assert code == expected, f"kubectl dlm {' '.join(args)}: exit {code}\n{out}{err}"


def test_cross_cluster_move_asks_for_exactly_what_rbac_prints(untrusted, kubevirt, dlm, tmp_path):
    # untrusted: `trust` has work whatever ran before (the fixture puts the trust back after)
    clusters = kubevirt.clusters
    ns = kubevirt.namespaces("source", "target")
    vm, secrets = vm_with_secret_and_configmap(clusters.source, ns)
    kubevirt.run_vm("source", ns, vm, secrets=secrets)
    where = ("--context", "source", "-n", ns, "--to-context", "target")
    rules = printed_rules(dlm, "vm1", *where)
    windows = {side: AuditWindow(clusters.by_name(side)) for side in rules}

    run(dlm, [(("trust", "--context", "source", "--to-context", "target"), errors.OK),
              (("check", "vm1", *where), errors.OK),
              (("render", "vm1", *where), errors.OK)])
    cancel_then_clean_up(kubevirt, dlm, where, ("source", ns), ("target", ns))
    run(dlm, [(("migrate", "vm1", *where, "--retire-source", "--parallel", "auto", *FOLLOW, "-o", "json"), errors.OK),
              (("status", "vm1", *where, "-o", "wide"), errors.OK),
              (("verify", "vm1", *where), errors.OK),
              (("report", "vm1", *where, "--output-file", str(tmp_path / "report.tar.gz")), errors.OK),
              (("cleanup", "vm1", *where), errors.REFUSED),
              (("cancel", "vm1", *where), errors.OK),
              (("retire", "vm1", *where, "--delete-vm", "--delete-disks", "--yes"), errors.OK)])
    assert_exactly_what_is_printed(windows, rules, CA_ALREADY_MERGED)


def test_same_cluster_move_asks_for_exactly_what_rbac_prints(kubevirt, dlm, tmp_path):
    """Also with the tuning flags: the bundle's MigrationPolicy (read back, applied, deleted when the
    move ends) and check's list of the cluster's policies."""
    clusters = kubevirt.clusters
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    vm, secrets = vm_with_secret_and_configmap(clusters.source, src)
    kubevirt.run_vm("source", src, vm, secrets=secrets)
    where = ("--context", "source", "-n", src, "--to-namespace", dst)
    tune = ("--bandwidth", "64Mi", "--allow-post-copy")
    code, text, err = dlm("rbac", "vm1", *where, *tune, "--serviceaccount", "gitops:migrator")
    assert code == errors.OK, err
    rules = {"source": [d for d in YAML(typ="safe").load_all(text) if d]}  # one cluster: one set
    assert {"apiGroups": ["migrations.kubevirt.io"], "resources": ["migrationpolicies"],
            "verbs": ["delete", "get", "list", "patch"]} in next(d["rules"] for d in rules["source"]
                                                               if d["kind"] == "ClusterRole")
    windows = {"source": AuditWindow(clusters.source)}
    target = AuditWindow(clusters.target)
    bundle = tmp_path / "bundle"
    run(dlm, [(("check", "vm1", *where, *tune), errors.OK)])
    cancel_then_clean_up(kubevirt, dlm, where, ("source", src), ("source", dst), tune)
    run(dlm, [(("render", "vm1", *where, *tune, "--output-dir", str(bundle)), errors.OK),
              (("apply", "-f", str(bundle), "--context", "source", "--retire-source", *FOLLOW), errors.OK),
              (("status", "vm1", *where), errors.OK),
              (("verify", "vm1", *where), errors.OK),
              (("report", "vm1", *where, "--output-file", str(tmp_path / "report.tar.gz")), errors.OK),
              (("retire", "vm1", *where, "--delete-vm", "--delete-disks", "--yes"), errors.OK)])
    assert not target.requests(PLUGIN)  # a same-cluster move never contacts the other cluster
    assert_exactly_what_is_printed(windows, rules, {})
