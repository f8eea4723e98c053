"""Disk sizes from the target's CDIConfig (status.filesystemOverhead), against the test clusters.

The CDIConfig CRD is tests/harness/crds/cdiconfigs.cdi.kubevirt.io.crd.yaml (names, scope and the
filesystemOverhead schema of CDI's generated CRD); CDI keeps the resolved values in status, which is
what its importer reads (CDI pkg/controller/common/util.go:628-675).
"""

from __future__ import annotations

import pytest

from kubectl_dlm import errors

pytest.importorskip("tests.harness.clusters", reason="the test clusters (tests/harness/clusters.py) are not in this tree")
pytest.importorskip("tests.sim.fixtures", reason="the KubeVirt simulator (tests/sim) is not in this tree")

from tests.sim import scenario  # noqa: E402

CDICONFIGS = "/apis/cdi.kubevirt.io/v1beta1/cdiconfigs"


@pytest.fixture
def target_cdiconfig(clusters):
    """CDIConfig `config` on the target as CDI's config controller leaves it; removed afterwards."""
    clusters.target.request("POST", CDICONFIGS, {
        "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "CDIConfig", "metadata": {"name": "config"}, "spec": {},
        "status": {"filesystemOverhead": {"global": "0.07", "storageClass": {"ceph-rbd": "0.1"}}}})
    yield
    clusters.target.request("DELETE", f"{CDICONFIGS}/config")


def block_vm():
    vm = scenario.vm_manifest("vm1", disk_size="512Mi")
    vm["spec"]["dataVolumeTemplates"][0]["spec"]["storage"].update(volumeMode="Block", storageClassName="fast-block")
    return vm


def render(cli, clusters, ns, tmp_path, mapping: str):
    path = tmp_path / "mapping.yaml"
    path.write_text(mapping)
    return cli("render", "vm1", "--kubeconfig", clusters.kubeconfig, "--context", "source", "-n", ns,
               "--to-context", "target", "--mapping-file", str(path), "--phase", "prepare")


def dv_size(stdout: str) -> str:
    from ruamel.yaml import YAML

    (dv,) = [d for d in YAML(typ="safe").load_all(stdout) if d and d["kind"] == "DataVolume"]
    assert dv["spec"]["storage"]["volumeMode"] == "Filesystem"
    return dv["spec"]["storage"]["resources"]["requests"]["storage"]


def test_block_onto_filesystem_is_sized_with_the_target_classes_overhead(clusters, namespaces, kubevirt_sim, cli,
                                                                          target_cdiconfig, tmp_path):
    ns = namespaces("source", "target")
    kubevirt_sim.run_vm("source", ns, block_vm())
    # a class with its own value: 512Mi / (1 - 2 * 0.1) = 640Mi (+1 byte -> 641Mi)
    result = render(cli, clusters, ns, tmp_path, "storageClasses:\n  fast-block: {storageClass: ceph-rbd, "
                                                 "volumeMode: Filesystem}\n")
    assert result.code == errors.OK, result.stderr
    assert dv_size(result.stdout) == "641Mi"
    assert ("note: vm1: disk vm1-disk: Block 512Mi onto Filesystem, requested as 641Mi with filesystem overhead 0.1 "
            "(the target CDIConfig's status.filesystemOverhead.storageClass[ceph-rbd])") in result.stderr_lines
    # a class without: the global value, 512Mi / (1 - 2 * 0.07) = 595.3 -> 596Mi
    result = render(cli, clusters, ns, tmp_path, "storageClasses:\n  fast-block: {storageClass: standard, "
                                                 "volumeMode: Filesystem}\n")
    assert dv_size(result.stdout) == "596Mi"
    assert any(line.endswith("with filesystem overhead 0.07 (the target CDIConfig's status.filesystemOverhead.global)")
               for line in result.stderr_lines)


def test_without_a_cdiconfig_cdis_default_is_used_and_said(clusters, namespaces, kubevirt_sim, cli, tmp_path):
    ns = namespaces("source", "target")
    kubevirt_sim.run_vm("source", ns, block_vm())
    result = render(cli, clusters, ns, tmp_path, "storageClasses:\n  fast-block: {storageClass: ceph-rbd, "
                                                 "volumeMode: Filesystem}\n")
    assert result.code == errors.OK, result.stderr
    assert dv_size(result.stdout) == "582Mi"  # 512Mi / 0.88
    note = [line for line in result.stderr_lines if line.startswith("note: vm1: disk vm1-disk:")]
    assert note and "with filesystem overhead 0.06 (CDI's default since v1.64.0; the target CDIConfig was not read: " \
                     "no CDIConfig config on cluster " in note[0]
