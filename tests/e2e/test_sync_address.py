"""A reviewed bundle never dials a stale synchronization address.

The address in a bundle names the target sync controller's leader pod at render time; when the
leader moves, virt-operator publishes the new one (pkg/virt-operator/resource/apply/core.go:811-872
@v1.9.0) and the migration controller copies it into the target VMIM's
status.synchronizationAddresses every reconcile (pkg/virt-controller/watch/migration/migration.go:
658,698-714). On the KubeVirt tier (tests/kubevirt) the real synchronization controllers answer only
where they listen, so a stale connectURL would stall in Synchronizing."""

from __future__ import annotations

from kubectl_dlm import errors
from tests.e2e.conftest import start_vm
from tests.kubevirt.tier import phase


def render(dlm, ns, bundle, *extra):
    code, out, err = dlm("render", "vm1", "--context", "source", "-n", ns, "--to-context", "target",
                         "--output-dir", str(bundle), *extra)
    assert code == errors.OK, err


def published(kubevirt, cluster: str) -> str:
    return kubevirt.get(cluster, "kubevirt", "kubevirt", "kubevirt")["status"]["synchronizationAddresses"][0]


def test_apply_uses_the_live_address_when_the_leader_moved_since_render(kubevirt, dlm, tmp_path):
    ns = kubevirt.namespaces("source", "target")
    start_vm(kubevirt, "source", ns)
    bundle = tmp_path / "migration"
    render(dlm, ns, bundle)
    rendered = published(kubevirt, "target")
    assert f"connectURL: {rendered}" in (bundle / "dlm-bundle.yaml").read_text()
    moved = kubevirt.faults.move_sync_leader("target")   # the old address refuses from now on
    assert moved != rendered and published(kubevirt, "target") == moved
    code, out, err = dlm("apply", "-f", str(bundle), "--timeout", "120", "-o", "plain")
    assert code == errors.OK, out + err
    assert (f"vm1: the target migration publishes synchronization address {moved}, the bundle has {rendered} "
            f"(rendered earlier; the leader may have moved): using {moved}") in out + err
    [sent] = kubevirt.list("source", "vmim", ns) or [None]
    if sent is not None:  # KubeVirt deletes it once the source VMI is gone
        assert sent["spec"]["sendTo"]["connectURL"] == moved
    kubevirt.wait_for("target", "vmi", ns, "vm1", lambda o: phase(o) == "Running", 30, "target running")


def test_a_connect_url_the_user_chose_wins(kubevirt, dlm, tmp_path):
    ns = kubevirt.namespaces("source", "target")
    start_vm(kubevirt, "source", ns)
    bundle = tmp_path / "migration"
    render(dlm, ns, bundle)
    assert "connectURLFrom" not in (bundle / "dlm-bundle.yaml").read_text()
    # apply --connect-url: the user's address is sent even though the target migration shows another
    # (a documentation address, RFC 5737: nothing answers, so the two sides never connect)
    own = "192.0.2.99:9185"
    code, out, err = dlm("apply", "-f", str(bundle), "--connect-url", own, "--sync-timeout", "5", "--timeout", "60",
                         "-o", "plain")
    assert code == errors.TIMED_OUT, out + err
    assert "publishes synchronization address" not in out + err
    [sent] = kubevirt.list("source", "vmim", ns)
    assert sent["spec"]["sendTo"]["connectURL"] == own
    # render --connect-url records the choice, so apply keeps it too
    render(dlm, ns, tmp_path / "pinned", "--connect-url", "192.0.2.21:9185")
    assert "connectURLFrom: flag" in (tmp_path / "pinned" / "dlm-bundle.yaml").read_text()
