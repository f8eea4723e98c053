"""Helpers for the end-to-end tests: run the CLI in-process against the KubeVirt tier's clusters."""

from __future__ import annotations

import pytest

from kubectl_dlm import cli


@pytest.fixture
def dlm(kubevirt, capsys):
    """dlm("migrate", "vm1", ...) -> (exit code, stdout, stderr), with the KubeVirt tier's kubeconfig
    (tests/kubevirt/tier.py)."""

    def run(*args: str):
        code = cli.run(list(args) + ["--kubeconfig", str(kubevirt.clusters.kubeconfig)])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def start_vm(tier, cluster: str, namespace: str, name: str = "vm1", run_strategy: str = "Always", **manifest):
    """A Running, live-migratable VM on the KubeVirt tier: a containerDisk VM unless data_volume=True."""
    from tests.kubevirt.tier import vm_manifest
    return tier.run_vm(cluster, namespace, vm_manifest(name, run_strategy, **manifest))
