"""kubectl_dlm.trust, the pure part: what to post where (no cluster)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from kubectl_dlm import pem, trust
from tests.test_pem import NOW, make_cert


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    d = tmp_path_factory.mktemp("trust")

    def one(text):
        return pem.parse_bundle(text)[0]

    return SimpleNamespace(
        west=one(make_cert(d, "/CN=kubevirt.io@1/O=west")),
        west_new=one(make_cert(d, "/CN=kubevirt.io@2/O=west")),
        east=one(make_cert(d, "/CN=kubevirt.io@3/O=east")),
        expired=one(make_cert(d, "/CN=old", not_before=NOW - dt.timedelta(days=9), not_after=NOW - dt.timedelta(days=2))),
        future=one(make_cert(d, "/CN=early", not_before=NOW + dt.timedelta(hours=2), not_after=NOW + dt.timedelta(days=7))),
    )


def test_from_scratch_everything_valid_is_added(ca):
    d = trust.plan_direction("west", "east", "kubevirt", [ca.west, ca.west_new], [ca.east], [], NOW)
    assert d.add == [ca.west, ca.west_new]
    assert (d.pending, d.trusted, d.expired, d.not_yet_valid) == ([], [], [], [])
    assert not d.complete and d.wanted == [ca.west, ca.west_new]


def test_already_trusted_or_waiting_in_the_drop_box_is_not_posted_again(ca):
    d = trust.plan_direction("west", "east", "kubevirt", [ca.west, ca.west_new, ca.east],
                             [ca.east, ca.west], [ca.west_new], NOW)
    assert d.add == []
    assert d.trusted == [ca.west, ca.east]  # the peer's own CA in our bundle is trusted already: no-op
    assert d.pending == [ca.west_new]
    assert not d.complete  # still waiting for the operator to merge the pending one


def test_duplicates_in_the_origin_bundle_are_posted_once(ca):
    d = trust.plan_direction("west", "east", "kubevirt", [ca.west, ca.west, ca.west], [ca.east], [], NOW)
    assert d.add == [ca.west]


def test_expired_and_not_yet_valid_certificates_are_skipped(ca):
    d = trust.plan_direction("west", "east", "kubevirt", [ca.expired, ca.west, ca.future], [ca.east], [], NOW)
    assert d.add == [ca.west]
    assert d.expired == [ca.expired]
    assert d.not_yet_valid == [ca.future]


def test_nothing_valid_says_so(ca):
    d = trust.plan_direction("west", "east", "kubevirt", [ca.expired], [ca.east], [], NOW)
    assert d.add == [] and d.complete
    assert d.notes == ["west's kubevirt-ca has no currently valid certificate: nothing to post"]


def test_idempotent_direction_is_complete_and_reads_as_nothing_to_change(ca):
    d = trust.plan_direction("west", "east", "kubevirt", [ca.west], [ca.east, ca.west], [], NOW)
    assert d.complete and d.add == []
    text = trust.describe_direction(d)
    assert text.splitlines()[0] == "west -> east (kubevirt/kubevirt-external-ca):"
    assert text.splitlines()[-1] == "  nothing to change: east already trusts all of west's valid CA certificates"


def test_describe_shows_subjects_and_validity_never_pem(ca):
    d = trust.plan_direction("west", "east", "kubevirt", [ca.west, ca.expired], [ca.east], [], NOW)
    text = trust.describe_direction(d, dry_run=True)
    assert (f"  would add             CN=kubevirt.io@1, O=west  valid {pem.format_time(ca.west.not_before)} .. "
            f"{pem.format_time(ca.west.not_after)}  sha256 {ca.west.short_id}") in text.splitlines()
    assert f"  skip (expired)        CN=old  valid {pem.format_time(ca.expired.not_before)}" in text
    assert "BEGIN CERTIFICATE" not in text


def test_missing_from_compares_certificates_not_strings(ca):
    # The same certificate re-wrapped at another line width and with comments is still present.
    body = "".join(ca.west.pem.splitlines()[1:-1])
    rewrapped = "# comment\n-----BEGIN CERTIFICATE-----\n" + "\n".join(
        body[i:i + 76] for i in range(0, len(body), 76)) + "\n-----END CERTIFICATE-----\n"
    assert trust.missing_from([ca.west], rewrapped) == []
    assert trust.missing_from([ca.west, ca.east], rewrapped) == [ca.east]
    assert trust.missing_from([ca.west], "garbage") == [ca.west]
    assert trust.missing_from([ca.west], None) == [ca.west]


def test_result_is_truthy_only_when_something_was_posted(ca):
    quiet = trust.TrustResult(directions=[trust.plan_direction("w", "e", "kubevirt", [ca.west], [ca.west], [], NOW)])
    busy = trust.TrustResult(directions=[trust.plan_direction("w", "e", "kubevirt", [ca.west], [], [], NOW)])
    assert not quiet and not quiet.changed
    assert busy and busy.changed
    assert busy.to_dict()["directions"][0]["added"] == [
        {"subject": "CN=kubevirt.io@1, O=west", "notAfter": ca.west.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
         "sha256": ca.west.sha256}]


def test_same_cluster_needs_no_exchange():
    a = SimpleNamespace(server="https://10.0.0.1:6443")
    b = SimpleNamespace(server="https://10.0.0.1:6443")
    c = SimpleNamespace(server="https://10.0.0.2:6443")
    assert trust.same_cluster(a, a) and trust.same_cluster(a, b) and not trust.same_cluster(a, c)
    result = trust.ensure_trust(a, b)
    assert result.same_cluster and not result.changed
    assert result.reason == "source and target are the same cluster: its sync controller already trusts itself"
