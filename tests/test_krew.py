"""krew/dlm.yaml against the krew index's own rules, and the version everywhere it is written.

Per platform, the structure is always checked; the sha256 and the archive's contents only where
the archive was built on this machine (dist/, by `bash packaging/release.sh`): the others are
reported as skipped, with the reason, never as passed. tests/test_release.py builds an archive
and checks a manifest entry made for it the same way.
"""

from __future__ import annotations

import configparser
import io
import os
import re
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from kubectl_dlm import __version__
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "packaging"))
import krewcheck  # noqa: E402
import release  # noqa: E402

MANIFEST = REPO / "krew" / "dlm.yaml"
EXPECTED = [("linux", "amd64"), ("linux", "arm64"), ("darwin", "amd64"), ("darwin", "arm64"), ("windows", "amd64")]
DIST = [REPO / "dist"]


@pytest.fixture(scope="module")
def manifest():
    return krewcheck.load(MANIFEST)


def by_platform():
    data = krewcheck.load(MANIFEST)
    return {krewcheck.os_arch(p): p for p in krewcheck.platforms(data)}


# --- the manifest as krew-index CI reads it -------------------------------------------------------

def test_structure_passes_krews_validation(manifest):
    assert krewcheck.structural(manifest, MANIFEST.stem) == []
    assert manifest["metadata"]["name"] == MANIFEST.stem == "dlm"


def test_one_platform_per_supported_os_arch_and_no_overlap(manifest):
    assert krewcheck.selection(manifest) == []
    assert [krewcheck.os_arch(p) for p in krewcheck.platforms(manifest)] == EXPECTED
    for platform in krewcheck.platforms(manifest):
        assert set(platform["selector"]) == {"matchLabels"}
        assert set(platform["selector"]["matchLabels"]) == {"os", "arch"}


def test_version_is_the_package_version_with_a_leading_v(manifest):
    assert manifest["spec"]["version"] == f"v{__version__}"
    assert krewcheck.SEMVER.match(manifest["spec"]["version"])


def test_texts_follow_the_krew_guidelines(manifest):
    spec = manifest["spec"]
    short = spec["shortDescription"]
    assert len(short) <= 50 and "\n" not in short
    assert "decentralized live migration" in short.lower()  # spells out "dlm"
    description = spec["description"]
    assert not re.search(r"(^|\s)--?[a-z]", description), "the description lists no flags (that is -h's job)"
    assert "KubeVirt" in description and "namespace" in description and "cluster" in description
    caveats = spec["caveats"]
    assert "DecentralizedLiveMigration" in caveats and "CA" in caveats
    for text in (description, caveats):
        assert max(len(line) for line in text.splitlines()) <= 80
    assert spec["homepage"].startswith("https://")


def test_manifest_is_the_template_filled_in(manifest):
    """krew/dlm.yaml is generated: regenerating it from the template with its own values is a no-op."""
    text = MANIFEST.read_text(encoding="utf-8")
    repo = manifest["spec"]["homepage"].split("https://github.com/", 1)[1]
    old = release.read_shas(text)
    shas = {(o, a): old[release.uri(repo, __version__, o, a)] for o, a in EXPECTED
            if old.get(release.uri(repo, __version__, o, a), release.PENDING) != release.PENDING}
    assert release.render_manifest(release.TEMPLATE.read_text(encoding="utf-8"), __version__, repo, shas) == text


@pytest.mark.parametrize("os_arch", EXPECTED, ids=lambda p: "/".join(p))
def test_platform_entry(os_arch):
    platform = by_platform()[os_arch]
    os_, arch = os_arch
    assert platform["uri"].startswith("https://")
    assert platform["uri"].rsplit("/", 1)[1] == release.archive_name(__version__, os_, arch)
    assert platform["bin"] == ("kubectl-dlm.exe" if os_ == "windows" else "kubectl-dlm")
    assert {"from": "LICENSE", "to": "."} in platform["files"]
    if platform["sha256"] == release.PENDING:
        pytest.skip(f"{os_}/{arch}: sha256 pending, filled in by .github/workflows/release.yml")
    assert krewcheck.SHA256.match(platform["sha256"])


@pytest.mark.parametrize("os_arch", EXPECTED, ids=lambda p: "/".join(p))
def test_platform_archive(os_arch):
    """sha256, bin and LICENSE, by installing the local archive the way krew does."""
    platform = by_platform()[os_arch]
    archive = krewcheck.local_archive(platform, DIST)
    if archive is None:
        pytest.skip(f"{'/'.join(os_arch)}: not verified here, dist/{platform['uri'].rsplit('/', 1)[1]} "
                    "was not built on this machine")
    assert krewcheck.archive_problems(platform, archive) == []


# --- the version, everywhere it is written -----------------------------------------------------

def test_version_command_setup_cfg_and_manifest_agree(cli, manifest):
    result = cli("version")
    assert (result.code, result.stdout) == (0, f"kubectl-dlm {__version__}\n")
    assert cli("--version").stdout == f"kubectl-dlm {__version__}\n"
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    assert config.get("metadata", "version") == "attr: kubectl_dlm.__version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    assert manifest["spec"]["version"] == f"v{__version__}" and release.version() == __version__
    assert f"/v{__version__}/" in by_platform()[("linux", "amd64")]["uri"]


# --- the checker and the generator catch what krew catches ---------------------------------------

def write_archive(path: Path, files: dict, symlinks: dict = None) -> Path:
    """A small tar.gz (or zip) with {name: bytes} and {name: link target}."""
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as z:
            for name, data in files.items():
                info = zipfile.ZipInfo(name)
                info.external_attr = 0o100755 << 16
                z.writestr(info, data)
        return path
    with tarfile.open(path, "w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            t.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            t.addfile(info)
    return path


GOOD = {"kubectl-dlm/kubectl-dlm": b"#!/bin/sh\n", "kubectl-dlm/_internal/lib.so": b"x", "LICENSE": b"Apache"}


def platform_for(archive: Path, **overrides) -> dict:
    platform = dict(by_platform()[("linux", "amd64")], sha256=release.sha256_file(archive))
    platform.update(overrides)
    return platform


def test_archive_check_passes_a_good_archive(tmp_path):
    archive = write_archive(tmp_path / "a.tar.gz", GOOD)
    assert krewcheck.archive_problems(platform_for(archive), archive) == []


def test_archive_check_catches_what_krew_would_refuse(tmp_path):
    archive = write_archive(tmp_path / "a.tar.gz", GOOD)
    assert "is not the archive's" in krewcheck.archive_problems(platform_for(archive, sha256="0" * 64), archive)[0]
    assert "is not in the installed files" in krewcheck.archive_problems(platform_for(archive, bin="kubectl-x"),
                                                                         archive)[0]
    no_license = write_archive(tmp_path / "b.tar.gz", {k: v for k, v in GOOD.items() if k != "LICENSE"})
    assert any("match files[].from 'LICENSE'" in p for p in
               krewcheck.archive_problems(platform_for(no_license), no_license))
    assert any("no LICENSE" in p for p in krewcheck.archive_problems(
        platform_for(no_license, files=[{"from": "kubectl-dlm/*", "to": "."}]), no_license))
    linked = write_archive(tmp_path / "c.tar.gz", GOOD, symlinks={"kubectl-dlm/_internal/lib.so.1": "lib.so"})
    assert any("neither a regular file nor a directory" in p
               for p in krewcheck.archive_problems(platform_for(linked), linked))
    escaping = write_archive(tmp_path / "d.tar.gz", {**GOOD, "../evil": b"x"})
    assert any("refuses" in p for p in krewcheck.archive_problems(platform_for(escaping), escaping))


def test_structure_check_catches_what_krew_would_refuse(manifest):
    def problems(**changes):
        bad = {**manifest, "spec": {**manifest["spec"]}, "metadata": {**manifest["metadata"]}}
        for key, value in changes.items():
            if key == "name":
                bad["metadata"]["name"] = value
            else:
                bad["spec"][key] = value
        return krewcheck.structural(bad, "dlm", allow_pending=False) + krewcheck.selection(bad)

    linux = by_platform()[("linux", "amd64")]
    assert problems(name="virt-dlm")
    assert problems(shortDescription="two\nlines")
    assert problems(version="0.1.0") and problems(version="v0.1")
    assert problems(platforms=[dict(linux, sha256="ABC")])
    assert problems(platforms=[dict(linux, selector={"matchLabels": {"os": "linux", "distro": "x"}})])
    assert problems(platforms=[linux, dict(linux, selector={"matchLabels": {"os": "linux"}})])  # overlap
    assert problems(platforms=[dict(linux, selector={"matchLabels": {"os": "plan9", "arch": "amd64"}})])
    assert problems(platforms=[dict(linux, files=[])])
    assert problems(platforms=[])
    assert any("sha256" in p for p in problems(platforms=[dict(linux, sha256=release.PENDING)]))


def test_fill_manifest_from_archives(tmp_path, monkeypatch):
    """Built archives fill their platform, earlier values for the same uri stay, the rest is PENDING."""
    dist = tmp_path / "dist"
    dist.mkdir()
    linux = write_archive(dist / release.archive_name(__version__, "linux", "amd64"), GOOD)
    windows = write_archive(dist / release.archive_name(__version__, "windows", "amd64"),
                            {"kubectl-dlm/kubectl-dlm.exe": b"MZ", "LICENSE": b"Apache"})
    out = tmp_path / "dlm.yaml"
    mac_uri = release.uri("me/kubectl-dlm", __version__, "darwin", "arm64")
    out.write_text(f"    uri: {mac_uri}\n    sha256: \"{'a' * 64}\"\n")
    how = release.fill_manifest([dist], "me/kubectl-dlm", manifest=out)
    assert how[("linux", "amd64")].startswith("built") and how[("windows", "amd64")].startswith("built")
    assert how[("darwin", "arm64")] == "kept from the previous manifest"
    assert how[("darwin", "amd64")] == how[("linux", "arm64")] == "pending"
    assert krewcheck.check_manifest(out, [dist]) == []  # the two built archives install like krew
    missing = krewcheck.check_manifest(out, [dist], complete=True)
    assert any("PENDING" in p for p in missing) and any("darwin" in p for p in missing)
    data = krewcheck.load(out)
    filled = {krewcheck.os_arch(p): p["sha256"] for p in krewcheck.platforms(data)}
    assert filled[("linux", "amd64")] == release.sha256_file(linux)
    assert filled[("windows", "amd64")] == release.sha256_file(windows)
    assert filled[("darwin", "arm64")] == "a" * 64
    assert data["spec"]["homepage"] == "https://github.com/me/kubectl-dlm"


def test_release_extra_and_constraints_agree():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    scripts = config.get("options.entry_points", "console_scripts")
    assert "kubectl_complete-dlm = kubectl_dlm.completion:main" in scripts
    pins = dict(line.split("==") for line in release.CONSTRAINTS.read_text().splitlines()
                if line and not line.startswith("#"))
    for requirement in release.requirements():
        name = re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0]
        assert any(p.lower().replace("_", "-") == name.lower().replace("_", "-") for p in pins), \
            f"{name} (setup.cfg) has no pinned version in packaging/constraints.txt"
    assert os.access(REPO / "packaging" / "release.sh", os.X_OK)
