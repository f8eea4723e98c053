"""`kubectl dlm status -o ...` on a finished migration, on the KubeVirt tier (KubeVirt's own controllers)."""

from __future__ import annotations

import json

from ruamel.yaml import YAML

from kubectl_dlm import errors
from tests.e2e.conftest import start_vm


def test_status_in_every_format_after_a_cross_cluster_move(kubevirt, dlm):
    ns = kubevirt.namespaces("source", "target")
    start_vm(kubevirt, "source", ns)
    sides = ("--context", "source", "-n", ns, "--to-context", "target")
    code, out, err = dlm("migrate", "vm1", *sides, "--sync-timeout", "60", "--timeout", "120", "-o", "json")
    assert code == errors.OK, out + err
    started = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    migration_id = next(e["migrationID"] for e in started if e.get("event") == "finished")
    # KubeVirt deletes the source VMIM once its VMI is gone (migration.go:403-406): wait for that, so
    # every format sees the same state
    kubevirt.wait_gone("source", "vmi", ns, "vm1")
    for vmim in kubevirt.list("source", "vmim", ns):
        kubevirt.wait_gone("source", "vmim", ns, vmim["metadata"]["name"])

    code, out, err = dlm("status", "vm1", *sides, "-o", "json")
    assert code == errors.OK, err
    [row] = json.loads(out)
    assert (row["vm"], row["outcome"], row["migration_id"], row["source_phase"], row["target_phase"]) == (
        "vm1", "succeeded", migration_id, "gone after Succeeded", "Succeeded")
    code, out, err = dlm("status", "vm1", *sides, "-o", "yaml")
    assert code == errors.OK and YAML(typ="safe").load(out) == [row], err
    code, out, err = dlm("status", "vm1", *sides)
    assert code == errors.OK, err
    assert out.splitlines()[0].split() == ["VM", "OUTCOME", "SOURCE", "MIGRATION", "TARGET", "MIGRATION", "TARGET", "VMI"]
    assert out.splitlines()[1].split()[:2] == ["vm1", "succeeded"]
    code, out, err = dlm("status", "vm1", *sides, "-o", "markdown")
    assert code == errors.OK, err
    assert out.splitlines()[2].startswith("| vm1 | succeeded | ") and f"| {migration_id} |" in out
