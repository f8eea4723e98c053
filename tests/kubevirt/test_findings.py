"""The fidelity review's findings (issue 9), on KubeVirt's own code. A finding's test fails with the
plugin before its fix, for the reason the review names (expected-to-fail until the fix lands), and
is a plain test after."""
from __future__ import annotations

import pytest

from kubectl_dlm import cli, errors
from tests.kubevirt import played
from tests.kubevirt.test_live import vm_manifest


@pytest.fixture
def dlm(kubevirt_clusters, capsys):
    def run(*args: str):
        code = cli.run(list(args) + ["--kubeconfig", str(kubevirt_clusters.kubeconfig)])
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def test_dry_run_server_passes_on_real_kubevirt(kubevirt_clusters, kv_namespace, dlm):
    # Finding 1: KubeVirt's migration webhook has sideEffects None, so the API server calls it on a
    # server-side dry-run too; it looks up the receiving VMI, which a dry-run never created, and
    # denies (pkg/virt-api/webhooks/validating-webhook/admitters/migration-create-admitter.go:124-127).
    # Before the plugin's fix (16fd2ec) this failed with that denial; now the receiving migration is
    # reported as validated at run time, and everything else is judged by the real webhooks.
    played.run_vm(kubevirt_clusters.kubevirt["source"], kv_namespace, vm_manifest("vm1", "Always"))
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", kv_namespace, "--to-context", "target",
                         "--dry-run=server", "-o", "plain")
    assert code == errors.OK, out + err
    assert "vm1: checked VirtualMachine" in out and "validated at run time: needs the receiving VMI" in out
    assert "vm1: dry run" in out
    for cluster, kind in (("target", "virtualmachines"), ("target", "virtualmachineinstancemigrations"),
                          ("source", "virtualmachineinstancemigrations")):
        assert kubevirt_clusters.by_name(cluster).request(
            "GET", f"/apis/kubevirt.io/v1/namespaces/{kv_namespace}/{kind}")["items"] == [], (cluster, kind)
