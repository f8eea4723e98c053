"""Names the user gives are checked with Kubernetes' rules before anything is contacted."""

from __future__ import annotations

import pytest

from kubectl_dlm import errors, names
from kubectl_dlm.plan import batch_migration_id
from tests.conftest import FIXTURES, TARGET_ARGS, run_cli


@pytest.mark.parametrize("value,ok", [
    ("prod", True), ("prod-b", True), ("a" * 63, True), ("0abc", True),
    ("a" * 64, False), ("Prod", False), ("prod_b", False), ("prod.b", False), ("-prod", False), ("prod-", False),
    ("", False), ("prod b", False), ("pröd", False),
])
def test_namespace_is_an_rfc1123_label(value, ok):
    assert (names.dns_label_problem(value) is None) == ok


@pytest.mark.parametrize("value,ok", [
    ("vm1", True), ("db.prod", True), ("a" * 253, True), ("a" * 254, False), ("VM1", False), ("vm_1", False),
    ("vm..1", False), (".vm", False),
])
def test_object_names_are_rfc1123_subdomains(value, ok):
    assert (names.dns_subdomain_problem(value) is None) == ok


@pytest.mark.parametrize("value,ok", [
    ("move-1", True), ("a" * 63, True), ("a" * 64, False), ("Move1", False), ("move_1", False), ("move.1", False),
    ("move-", False), ("", False), ("mové", False),
])
def test_migration_id_is_a_lower_case_label_value(value, ok):
    assert (names.migration_id_problem(value) is None) == ok


def test_one_migration_id_for_several_vms_gives_each_vm_its_own_valid_id():
    ids = {batch_migration_id("a" * 63, vm) for vm in ("web-1", "web-2", "x" * 200)}
    assert len(ids) == 3 and all(names.migration_id_problem(i) is None for i in ids)
    assert batch_migration_id("move", "web-1") == "move-web-1"


EXPORT = str(FIXTURES / "pvc-volumes.yaml")


@pytest.mark.parametrize("flags,says", [
    (["--to-namespace", "Prod_B"], "--to-namespace Prod_B: 'Prod_B' is not a valid namespace name"),
    (["-n", "x" * 64], "is not a valid namespace name (RFC 1123 label): it is 64 characters long"),
    (["--migration-id", "My_Move"], "--migration-id My_Move: 'My_Move' is not a valid migration ID"),
    (["--migration-id", "m" * 64], "is not a valid migration ID: it is 64 characters long (at most 63"),
    (["--storage-class-map", "standard=Fast_SSD"], "--storage-class-map standard=Fast_SSD: 'Fast_SSD' is not a valid storage class"),
    (["--network-map", "lan=Bad_NS/lan"], "'Bad_NS' is not a valid namespace name"),
    (["--claim-map", "data=Data"], "--claim-map data=Data: 'Data' is not a valid claim name"),
])
def test_an_invalid_name_is_a_usage_error_before_anything_is_read(flags, says):
    # --kubeconfig points nowhere: the name is refused before a cluster (or the file) is looked at
    result = run_cli(["migrate", "vm1", *flags, "--kubeconfig", "/nonexistent/config"])
    assert result.code == errors.USAGE, result.stderr
    assert says in result.stderr and result.stdout == ""
    assert "kubeconfig" not in result.stderr


@pytest.mark.parametrize("command", ["status", "cancel", "cleanup"])
def test_manage_commands_check_names_first(command):
    result = run_cli([command, "My_VM", "--kubeconfig", "/nonexistent/config"])
    assert result.code == errors.USAGE and "VM name 'My_VM' is not valid" in result.stderr


def test_render_from_a_file_checks_the_target_namespace():
    result = run_cli(["render", "-f", EXPORT, "--to-namespace", "prod_b", "--connect-url", TARGET_ARGS[3]])
    assert result.code == errors.USAGE and "'prod_b' is not a valid namespace name" in result.stderr
