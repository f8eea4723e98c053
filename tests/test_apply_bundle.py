"""`kubectl dlm apply -f DIR` refuses a bundle whose files do not match its index, before any
cluster is touched (the clusters passed here are None: touching one would raise)."""

from __future__ import annotations

import pytest

from kubectl_dlm import errors, execute
from tests.conftest import FIXTURES, TARGET_ARGS, run_cli


@pytest.fixture
def bundle(tmp_path):
    out = tmp_path / "bundle"
    assert run_cli(["render", "-f", FIXTURES / "datavolume-templates.yaml", *TARGET_ARGS, "--output-dir", out]).code == 0
    return out


def test_an_object_moved_to_another_namespace_is_refused(bundle):
    vm_file = next((bundle / "1-prepare-target").glob("virtualmachine-*.yaml"))
    vm_file.write_text(vm_file.read_text().replace("namespace: prod-b", "namespace: kube-system"))
    with pytest.raises(errors.UsageError, match="is in namespace kube-system, but phase prepare goes to the target namespace prod-b"):
        execute.apply_bundle(bundle, None, None, execute.FollowOptions())


def test_an_object_from_another_migration_is_refused(bundle):
    vm_file = next((bundle / "1-prepare-target").glob("virtualmachine-*.yaml"))
    text = vm_file.read_text()
    mid = text.split("dlm.kubevirt-tools.io/migration-id: ")[1].split()[0]
    vm_file.write_text(text.replace(mid, "0000000000000000"))
    with pytest.raises(errors.UsageError, match="does not belong to this bundle"):
        execute.apply_bundle(bundle, None, None, execute.FollowOptions())


def test_a_directory_that_is_not_a_bundle(tmp_path):
    with pytest.raises(errors.UsageError, match="is not a kubectl-dlm bundle"):
        execute.apply_bundle(tmp_path, None, None, execute.FollowOptions())
