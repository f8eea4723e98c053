"""Helpers for the end-to-end tests: run the CLI in-process against the test clusters."""

from __future__ import annotations

import pytest

from kubectl_dlm import cli
from tests.sim import scenario


@pytest.fixture
def dlm(clusters, capsys):
    """dlm("migrate", "vm1", ...) -> (exit code, stdout, stderr), with the test kubeconfig."""

    def run(*args: str):
        code = cli.run(list(args) + ["--kubeconfig", str(clusters.kubeconfig)])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def start_vm(sim, cluster: str, namespace: str, name: str = "vm1", run_strategy: str = "Always"):
    return sim.run_vm(cluster, namespace, scenario.vm_manifest(name, run_strategy=run_strategy))
