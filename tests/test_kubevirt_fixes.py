"""kubectl_dlm.checks.kubevirt_fixes, pure: which known DLM bugs of a KubeVirt release hit this move."""

from __future__ import annotations

import pytest

from kubectl_dlm.checks import kubevirt_fixes as kf
from tests.test_checks import make_facts, make_kubevirt, make_pvc, make_vm, make_vmi

SCOPE = "vm prod/db"
PLAIN = kf.Move()
TPM = kf.Move(persistent_state=("persistent TPM",))


@pytest.mark.parametrize("version, fixed_in, fixed", [
    ((1, 8, 2), ((1, 8, 3), (1, 9, 0)), False),
    ((1, 8, 3), ((1, 8, 3), (1, 9, 0)), True),
    ((1, 7, 9), ((1, 8, 3), (1, 9, 0)), False),  # never backported to v1.7
    ((1, 10, 0), ((1, 8, 3), (1, 9, 0)), True),  # later lines have it
    ((1, 7, 1), ((1, 7, 1), (1, 8, 0)), True),
    ((1, 7, 0), ((1, 7, 1), (1, 8, 0)), False),
    ((1, 6, 5), ((1, 7, 1), (1, 8, 0)), False),
    ((1, 9, 0), ((1, 9, 0),), True),
])
def test_has_fix_reads_the_first_release_per_minor_line(version, fixed_in, fixed):
    assert kf.has_fix(version, fixed_in) is fixed


def test_every_fix_names_its_evidence_and_release():
    for fix in kf.FIXES:
        assert fix.evidence and fix.fixed_in and fix.severity in ("fail", "warn")
        assert max(fix.fixed_in) <= kf.RECOMMENDED


def test_tpm_efi_vm_on_v1_8_fails():
    row = kf.check_fixes({"west": ("v1.8.4", (1, 8, 4)), "east": ("v1.9.0", (1, 9, 0))},
                         {"west": TPM, "east": TPM}, SCOPE)
    assert row.status == "fail"
    assert row.reason.startswith("KubeVirt v1.8.4 on west: a VM with persistent TPM or EFI state stays pending forever "
                                 "(fixed in v1.9.0; kubevirt#18181 (efa3446859, v1.9.0))")
    assert row.fix == "upgrade KubeVirt on both clusters to v1.9.0 or later"


def test_plain_vm_on_v1_8_0_warns_about_failure_propagation_only():
    row = kf.check_fixes({"west": ("v1.8.0", (1, 8, 0))}, {"west": PLAIN}, SCOPE)
    assert row.status == "warn"
    assert row.reason.startswith("KubeVirt v1.8.0 on west: a failure on one side is not propagated to the other")
    assert "persistent TPM" not in row.reason and "volume mode" not in row.reason


def test_volume_mode_change_on_v1_7_0_fails_but_passes_on_v1_7_1():
    move = kf.Move(volume_mode_changes=("db-root",))
    assert kf.check_fixes({"west": ("v1.7.0", (1, 7, 0))}, {"west": move}, SCOPE).status == "fail"
    assert kf.check_fixes({"west": ("v1.7.1", (1, 7, 1))}, {"west": move}, SCOPE).status == "warn"


def test_ipv6_addresses_fail_only_where_published_unfixed():
    move = kf.Move(ipv6_addresses=("fd00::1:9185",))
    assert kf.check_fixes({"east": ("v1.8.2", (1, 8, 2))}, {"east": move}, SCOPE).status == "fail"
    assert "IPv6" not in kf.check_fixes({"east": ("v1.8.3", (1, 8, 3))}, {"east": move}, SCOPE).reason


def test_v1_9_passes_and_unknown_versions_are_unknown():
    row = kf.check_fixes({"west": ("v1.9.0", (1, 9, 0)), "east": ("v1.10.1", (1, 10, 1))}, {"west": TPM, "east": TPM},
                         SCOPE)
    assert (row.status, row.reason) == ("pass", "no known DLM bug of KubeVirt v1.9.0 on west and KubeVirt v1.10.1 on "
                                                "east affects this move")
    row = kf.check_fixes({"west": ("devel", None)}, {"west": PLAIN}, SCOPE)
    assert (row.status, row.reason) == ("unknown", "could not verify: no KubeVirt version known for west")


def test_the_check_row_sees_the_vms_tpm_and_the_mapped_volume_mode():
    from kubectl_dlm.checks.vm_rules import check_kubevirt_fixes
    from kubectl_dlm.refs import references

    vm = make_vm(domain={"devices": {"tpm": {"persistent": True}}})
    facts = make_facts(vm, make_vmi(), make_pvc("db-root"))
    facts.clusters["target"].kubevirt = make_kubevirt(["192.0.2.20:9185"], version="v1.8.3")
    row = check_kubevirt_fixes(facts, references(vm, None), None, SCOPE)
    assert row.status == "fail"
    assert "KubeVirt v1.8.3 on east: a VM with persistent TPM or EFI state stays pending forever" in row.reason
    assert "on west" in row.reason  # v1.8.1 on the source lacks the fix too
