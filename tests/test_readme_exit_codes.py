"""The README's exit codes agree with kubectl_dlm/errors.py, with each other and with what the CLI does."""

from __future__ import annotations

import re

import pytest

from kubectl_dlm import errors
from tests.conftest import FIXTURES, REPO, run_cli

README = (REPO / "README.md").read_text()
CODES = {name: value for name, value in vars(errors).items() if name.isupper() and isinstance(value, int)}


def exit_code_table():
    """{code: description} from the README's `| code | meaning |` table under 'Exit codes'."""
    section = README[README.index("Exit codes"):]
    rows = {}
    for line in section.splitlines()[1:]:
        match = re.match(r"\| ([0-9 /]+) \| (.+) \|$", line)
        if match:
            for code in match.group(1).split("/"):
                rows[int(code)] = match.group(2)
        elif rows and not line.startswith("|"):
            break
    return rows


def troubleshooting_sections():
    """[(codes the heading declares, the section's text)] of the Troubleshooting tables."""
    part = README[README.index("## Troubleshooting"):]
    part = part[:part.index("\n## ", 3)]
    chunks = re.split(r"^\*\*.+\*\* \((exit [^)]+)\)$", part, flags=re.M)
    out = []
    for heading, body in zip(chunks[1::2], chunks[2::2]):
        out.append(({int(n) for n in re.findall(r"\d+", heading)}, body))
    return out


def test_the_exit_code_table_is_errors_py():
    assert set(exit_code_table()) == set(CODES.values())


def test_contributing_lists_the_same_codes():
    text = (REPO / "CONTRIBUTING.md").read_text()
    line = text[text.index("Exit codes (`kubectl_dlm/errors.py`)"):].split("\n\n")[0]
    assert {int(n) for n in re.findall(r"(\d+) [a-z]", line)} == set(CODES.values())


def test_every_code_a_heading_or_a_help_text_names_exists():
    for codes, _ in troubleshooting_sections():
        assert codes <= set(CODES.values())
    for name in ("migrate", "check", "trust"):
        epilog = run_cli([name, "--help"]).stdout
        named = epilog[epilog.index("Exit codes:"):]
        assert {int(n) for n in re.findall(r"\b(\d+) [a-z]", named)} <= set(CODES.values()), name


def section_of(message: str) -> set:
    """The exit codes the Troubleshooting heading above `message` declares (or the row's own `(exit N)`)."""
    for codes, body in troubleshooting_sections():
        for row in body.splitlines():
            if message in row:
                own = re.search(r"\(exit (\d+)\)", row)
                return {int(own.group(1))} if own else codes
    raise AssertionError(f"README's troubleshooting has no row with {message!r}")


@pytest.fixture
def kubeconfig(tmp_path):
    path = tmp_path / "config"
    path.write_text("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                    "users: [{name: u, user: {token: t}}]\ncontexts: [{name: one, context: {cluster: c, user: u}}]\n"
                    "current-context: one\n")
    return str(path)


# (a message as the README quotes it, the command that produces it)
ROWS = [
    ("`no VM given`", ["render"]),
    ("`name VMs or pass -l, not both`", ["render", "vm1", "-l", "a=b", "-f", str(FIXTURES / "pvc-volumes.yaml")]),
    ("`--storage-class-map 'x' is not SRC=DST`", ["render", "-f", str(FIXTURES / "pvc-volumes.yaml"),
                                                  "--storage-class-map", "x"]),
    ("`--connect-url … has a URL scheme`", ["render", "-f", str(FIXTURES / "pvc-volumes.yaml"),
                                         "--connect-url", "https://a:1"]),
    ("`context X not found in …`", ["render", "vm1", "--context", "nowhere", "--kubeconfig", "{kubeconfig}"]),
    ("`cannot load kubeconfig …`", ["render", "vm1", "--kubeconfig", "/nonexistent/config"]),
    ("`VirtualMachine NS/X not found`", ["render", "nope", "-f", str(FIXTURES / "pvc-volumes.yaml")]),
    ("`cannot migrate VirtualMachine NS/X: it is not running`", ["render", "-f", str(FIXTURES / "refuse-not-running.yaml"), "--to-namespace", "b"]),
    ("`cannot reach cluster URL (context C) to VERB: connection refused`", ["render", "vm1", "--kubeconfig", "{kubeconfig}"]),
]


@pytest.mark.parametrize("message,argv", ROWS, ids=[m for m, _ in ROWS])
def test_each_quoted_error_exits_with_its_sections_code(message, argv, kubeconfig):
    result = run_cli([a.format(kubeconfig=kubeconfig) for a in argv])
    assert result.code in section_of(message), (result.code, result.stderr)
    assert result.stderr.startswith("error: ") and result.stdout == ""
