"""kubectl_dlm.formats and the -o formats of `check`: pure layout, table-tested."""

from __future__ import annotations

import json

import pytest
from ruamel.yaml import YAML

from kubectl_dlm import checks, errors, formats
from kubectl_dlm.checks.facts import Check, Report
from kubectl_dlm.formats import Column

COLUMNS = (Column("NAME", "name"), Column("STATE", "state"), Column("NOTE", "note", wide_only=True))
ROWS = [{"name": "db", "state": "failed", "note": "uses | pipes\nand two lines"}, {"name": "web-1", "state": "ok"}]


@pytest.mark.parametrize("kwargs, expected", [
    ({}, "NAME   STATE\ndb     failed\nweb-1  ok\n"),
    ({"notes": [["why: disk full"], []]}, "NAME   STATE\ndb     failed\n  why: disk full\nweb-1  ok\n"),
    ({"wide": True}, "NAME   STATE   NOTE\ndb     failed  uses | pipes / and two lines\nweb-1  ok\n"),
])
def test_grid(kwargs, expected):
    assert formats.grid(COLUMNS, ROWS, **kwargs) == expected


def test_markdown_escapes_pipes_and_keeps_line_breaks():
    assert formats.markdown(COLUMNS, ROWS) == ("| NAME | STATE | NOTE |\n|---|---|---|\n"
                                               "| db | failed | uses \\| pipes<br>and two lines |\n"
                                               "| web-1 | ok |  |\n")


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_documents_round_trip_and_are_deterministic(fmt):
    data = {"failed": True, "checks": [{"name": "a", "reason": "x: y | z " * 40}], "none": None}
    text = formats.document(data, fmt)
    assert text == formats.document(data, fmt) and text.endswith("\n")
    loaded = json.loads(text) if fmt == "json" else YAML(typ="safe").load(text)
    assert loaded == data
    assert list(loaded) == ["failed", "checks", "none"]  # the command's order, not sorted


REPORT = Report(rows=[Check("dlm-enabled", "pass", "ok", "", "cluster west (source)"),
                      Check("storage-classes", "fail", "class local | missing", "map it: --storage-class-map local=ceph",
                            "vm prod/db")])


@pytest.mark.parametrize("fmt, expected", [
    ("wide", "STATUS  CHECK            FOR                    REASON                 FIX\n"
             "pass    dlm-enabled      cluster west (source)  ok\n"
             "fail    storage-classes  vm prod/db             class local | missing  map it: --storage-class-map local=ceph\n"
             "\n1 failed, 0 warning(s), 0 could not be verified, 1 passed\n"),
    ("markdown", "| STATUS | CHECK | FOR | REASON | FIX |\n|---|---|---|---|---|\n"
                 "| pass | dlm-enabled | cluster west (source) | ok |  |\n"
                 "| fail | storage-classes | vm prod/db | class local \\| missing | map it: --storage-class-map local=ceph |\n"
                 "\n1 failed, 0 warning(s), 0 could not be verified, 1 passed\n"),
])
def test_check_report_formats(fmt, expected):
    assert checks.format_report(REPORT, fmt) == expected


def test_check_report_table_json_yaml_agree():
    assert checks.format_report(REPORT, "table") == checks.format_table(REPORT)
    assert json.loads(checks.format_report(REPORT, "json")) == REPORT.to_dict()
    assert YAML(typ="safe").load(checks.format_report(REPORT, "yaml")) == REPORT.to_dict()


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_check_command_takes_every_format(monkeypatch, cli, fmt):
    monkeypatch.setattr(checks, "run_checks", lambda request: REPORT)
    result = cli("check", "db", "-n", "prod", "--to-context", "east", "-o", fmt)
    assert result.code == errors.REFUSED, result.stderr
    assert result.stdout == checks.format_report(REPORT, fmt)


def test_unknown_format_is_a_usage_error(cli):
    result = cli("check", "db", "-o", "xml")
    assert result.code == errors.USAGE
    assert result.stderr.startswith("error: Invalid value for '-o' / '--output': 'xml' is not one of")


def _status_rows():
    from kubectl_dlm.manage import StatusRow

    return [StatusRow("db", "m-1", "Running", "Running", "Running", "in progress",
                      ["target blocked: dial tcp 10.0.0.5:9185: i/o timeout\n    fix: make the address routable"]),
            StatusRow("web", "m-2", "Succeeded", "Succeeded", "Running", "succeeded")]


@pytest.mark.parametrize("fmt, expected", [
    ("table", "VM   OUTCOME      SOURCE MIGRATION  TARGET MIGRATION  TARGET VMI\n"
              "db   in progress  Running           Running           Running\n"
              "  target blocked: dial tcp 10.0.0.5:9185: i/o timeout\n"
              "      fix: make the address routable\n"
              "web  succeeded    Succeeded         Succeeded         Running\n"),
    ("wide", "VM   OUTCOME      SOURCE MIGRATION  TARGET MIGRATION  TARGET VMI  MIGRATION ID  DETAILS\n"
             "db   in progress  Running           Running           Running     m-1           target blocked: dial tcp "
             "10.0.0.5:9185: i/o timeout / fix: make the address routable\n"
             "web  succeeded    Succeeded         Succeeded         Running     m-2\n"),
    ("markdown", "| VM | OUTCOME | SOURCE MIGRATION | TARGET MIGRATION | TARGET VMI | MIGRATION ID | DETAILS |\n"
                 "|---|---|---|---|---|---|---|\n"
                 "| db | in progress | Running | Running | Running | m-1 | target blocked: dial tcp 10.0.0.5:9185: "
                 "i/o timeout<br>fix: make the address routable |\n"
                 "| web | succeeded | Succeeded | Succeeded | Running | m-2 |  |\n"),
])
def test_status_formats(fmt, expected):
    from kubectl_dlm import status_view

    assert status_view.format_rows(_status_rows(), fmt) == expected


def test_status_json_and_yaml_keep_the_keys_status_always_printed():
    from kubectl_dlm import status_view

    data = json.loads(status_view.format_rows(_status_rows(), "json"))
    assert data[1] == {"details": [], "migration_id": "m-2", "outcome": "succeeded", "source_phase": "Succeeded",
                       "target_phase": "Succeeded", "target_vmi_phase": "Running", "vm": "web",
                       "migration_configuration": None, "migration_policy": None}
    assert YAML(typ="safe").load(status_view.format_rows(_status_rows(), "yaml")) == data


@pytest.mark.parametrize("fmt", ["yaml", "markdown"])
def test_status_watch_refuses_snapshot_formats_before_contacting_a_cluster(cli, fmt):
    result = cli("status", "db", "--watch", "--kubeconfig", "/nonexistent", "-o", fmt)
    assert result.code == errors.USAGE
    assert result.stderr.splitlines() == [f"error: --watch prints a live display or JSON events, not -o {fmt}",
                                          "  hint: use -o table or -o json with --watch, or leave out --watch"]
