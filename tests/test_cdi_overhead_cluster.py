"""Disk sizes from the target's CDIConfig (status.filesystemOverhead), on the KubeVirt tier.

CDI is played there (tests/kubevirt/cdi.py): its config controller resolves CDIConfig `config`'s
spec.filesystemOverhead into status, which is what its importer reads (CDI
pkg/controller/common/util.go:628-675) and what the plugin reads too.
"""

from __future__ import annotations

import contextlib

import pytest

from kubectl_dlm import errors

pytest.importorskip("tests.kubevirt.tier", reason="the KubeVirt tier (tests/kubevirt) is not in this tree")

from tests.kubevirt.tier import vm_manifest  # noqa: E402

CONFIG = "/apis/cdi.kubevirt.io/v1beta1/cdiconfigs/config"


def overhead(config: dict | None) -> dict:
    return ((config or {}).get("status") or {}).get("filesystemOverhead") or {}


@pytest.fixture
def target_cdiconfig(kubevirt):
    """The target's CDIConfig `config` as an admin tunes it (spec), once CDI resolved it into status;
    put back after."""
    def set_spec(value):
        kubevirt.request("target", "PATCH", CONFIG, {"spec": {"filesystemOverhead": value}},
                         content_type="application/merge-patch+json")
    kubevirt.wait_for("target", "cdiconfig", None, "config", None, 30, "CDI's CDIConfig")   # CDI makes it
    set_spec({"global": "0.07", "storageClass": {"ceph-rbd": "0.1"}})
    kubevirt.wait_for("target", "cdiconfig", None, "config",
                      lambda o: overhead(o).get("storageClass", {}).get("ceph-rbd") == "0.1", 30, "CDI's status")
    yield
    set_spec(None)
    kubevirt.wait_for("target", "cdiconfig", None, "config",
                      lambda o: overhead(o).get("global") == "0.06", 30, "CDI's status back to its default")


@contextlib.contextmanager
def no_cdiconfig(kubevirt):
    """The target has no CDIConfig: CDI is not running there (its played controller would create one
    again); after the block it runs again and makes `config` anew."""
    cdi = kubevirt.cdis["target"]
    cdi.stop()
    kubevirt.request("target", "DELETE", CONFIG)
    try:
        yield
    finally:
        cdi.start()
        kubevirt.wait_for("target", "cdiconfig", None, "config", lambda o: bool(overhead(o)), 30,
                          "CDI's CDIConfig")


def block_vm():
    vm = vm_manifest("vm1", data_volume=True, disk_size="512Mi")
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


def test_block_onto_filesystem_is_sized_with_the_target_classes_overhead(kubevirt, cli, target_cdiconfig, tmp_path):
    clusters = kubevirt.clusters
    ns = kubevirt.namespaces("source", "target")
    kubevirt.run_vm("source", ns, block_vm())
    # a class with its own value: 512Mi / (1 - 2 * 0.1) = 640Mi (+1 byte -> 641Mi)
    result = render(cli, clusters, ns, tmp_path, "storageClasses:\n  fast-block: {storageClass: ceph-rbd, "
                                                 "volumeMode: Filesystem}\n")
    assert result.code == errors.OK, result.stderr
    assert dv_size(result.stdout) == "641Mi"
    # the source claim's size as CDI wrote it: 512Mi as a plain byte count (InflateSizeWithOverhead
    # returns resource.NewScaledQuantity(bytes, 0) for Block too, CDI pkg/controller/common/util.go)
    assert ("note: vm1: disk vm1-disk: Block 536870912 (512Mi) onto Filesystem, requested as 641Mi with filesystem overhead 0.1 "
            "(the target CDIConfig's status.filesystemOverhead.storageClass[ceph-rbd])") in result.stderr_lines
    # a class without its own value: CDI's config controller resolves the global one for every class
    # into status (CDI v1.66 pkg/controller/config-controller.go reconcileFilesystemOverhead):
    # 512Mi / (1 - 2 * 0.07) = 595.3 -> 596Mi
    result = render(cli, clusters, ns, tmp_path, "storageClasses:\n  fast-block: {storageClass: standard, "
                                                 "volumeMode: Filesystem}\n")
    assert dv_size(result.stdout) == "596Mi"
    assert any(line.endswith("with filesystem overhead 0.07 (the target CDIConfig's "
                             "status.filesystemOverhead.storageClass[standard])") for line in result.stderr_lines), \
        result.stderr


def test_without_a_cdiconfig_cdis_default_is_used_and_said(kubevirt, cli, tmp_path):
    clusters = kubevirt.clusters
    ns = kubevirt.namespaces("source", "target")
    kubevirt.run_vm("source", ns, block_vm())
    with no_cdiconfig(kubevirt):
        result = render(cli, clusters, ns, tmp_path, "storageClasses:\n  fast-block: {storageClass: ceph-rbd, "
                                                     "volumeMode: Filesystem}\n")
    assert result.code == errors.OK, result.stderr
    assert dv_size(result.stdout) == "582Mi"  # 512Mi / 0.88
    note = [line for line in result.stderr_lines if line.startswith("note: vm1: disk vm1-disk:")]
    assert note and "with filesystem overhead 0.06 (CDI's default since v1.64.0; the target CDIConfig was not read: " \
                     "no CDIConfig config on cluster " in note[0]
