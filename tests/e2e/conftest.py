"""Helpers for the end-to-end tests: run the CLI in-process against the test clusters."""

from __future__ import annotations

import pytest

from kubectl_dlm import cli


@pytest.fixture
def dlm(request, capsys):
    """dlm("migrate", "vm1", ...) -> (exit code, stdout, stderr), with the test kubeconfig: the
    KubeVirt tier's when the test uses `kubevirt` (tests/kubevirt/tier.py), else the simulator's."""
    clusters = (request.getfixturevalue("kubevirt").clusters if "kubevirt" in request.fixturenames
                else request.getfixturevalue("clusters"))

    def run(*args: str):
        code = cli.run(list(args) + ["--kubeconfig", str(clusters.kubeconfig)])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def start_vm(sim, cluster: str, namespace: str, name: str = "vm1", run_strategy: str = "Always", **manifest):
    """A Running VM: on the KubeVirt tier (sim is a tier.Tier) a containerDisk VM unless
    data_volume=True; on the simulator its DataVolume VM."""
    from tests.kubevirt.tier import Tier, vm_manifest
    if isinstance(sim, Tier):
        return sim.run_vm(cluster, namespace, vm_manifest(name, run_strategy, **manifest))
    from tests.sim import scenario
    return sim.run_vm(cluster, namespace, scenario.vm_manifest(name, run_strategy=run_strategy))
