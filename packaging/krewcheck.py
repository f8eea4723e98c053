"""The krew index's checks on a plugin manifest, for krew/dlm.yaml (tests and release workflow).

Mirrors krew v0.4.x: internal/index/validation/validate.go (structure) and
cmd/validate-krew-manifest/main.go (every selector matches a supported os/arch, no two platforms
overlap, each platform installs and leaves a LICENSE in the install directory). The install is
done the way krew does it (packaging/release.py: extract_like_krew, install_like_krew) from the
archive in dist/ when it was built on this machine; krew-index CI downloads the real uri instead.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import release

API_VERSION = "krew.googlecontainertools.github.com/v1alpha2"
KIND = "Plugin"
SAFE_NAME = re.compile(r"^[\w-]+$")
WINDOWS_FORBIDDEN = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
SHA256 = re.compile(r"^[a-f0-9]{64}$")
# krew parses versions with k8s.io/apimachinery ParseSemantic after requiring the leading v.
SEMVER = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
# validate-krew-manifest's allPlatforms().
SUPPORTED: Tuple[Tuple[str, str], ...] = (
    ("windows", "386"), ("windows", "amd64"), ("windows", "arm64"), ("linux", "386"), ("linux", "amd64"),
    ("linux", "arm"), ("linux", "arm64"), ("linux", "ppc64le"), ("darwin", "386"), ("darwin", "amd64"),
    ("darwin", "arm64"))
LICENSE_FILES = {"license", "license.txt", "license.md", "licenses", "licenses.txt", "licenses.md", "copying",
                 "copying.txt"}


def load(path: Path) -> Dict[str, Any]:
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def platforms(manifest: Dict[str, Any]) -> List[Dict[str, Any]]:
    return list((manifest.get("spec") or {}).get("platforms") or [])


def os_arch(platform: Dict[str, Any]) -> Tuple[str, str]:
    labels = (platform.get("selector") or {}).get("matchLabels") or {}
    return str(labels.get("os", "")), str(labels.get("arch", ""))


def structural(manifest: Dict[str, Any], name: str, allow_pending: bool = True) -> List[str]:
    """validation.ValidatePlugin; a PENDING sha256 passes only with allow_pending."""
    problems = []
    spec = manifest.get("spec") or {}
    if manifest.get("apiVersion") != API_VERSION:
        problems.append(f"apiVersion is {manifest.get('apiVersion')!r}, not {API_VERSION}")
    if manifest.get("kind") != KIND:
        problems.append(f"kind is {manifest.get('kind')!r}, not {KIND}")
    if not SAFE_NAME.match(name) or name.upper() in WINDOWS_FORBIDDEN:
        problems.append(f"the plugin name {name!r} is not allowed")
    if (manifest.get("metadata") or {}).get("name") != name:
        problems.append(f"metadata.name is {(manifest.get('metadata') or {}).get('name')!r}, "
                        f"but the file is named {name}.yaml")
    short = spec.get("shortDescription") or ""
    if not short:
        problems.append("no shortDescription")
    if "\n" in short or "\r" in short:
        problems.append("shortDescription has a line break")
    if not platforms(manifest):
        problems.append("no platforms")
    if not SEMVER.match(str(spec.get("version") or "")):
        problems.append(f"version {spec.get('version')!r} is not semver with a leading v")
    for index, platform in enumerate(platforms(manifest)):
        problems += [f"platforms[{index}] {os_arch(platform)}: {p}" for p in _platform(platform, allow_pending)]
    return problems


def _platform(platform: Dict[str, Any], allow_pending: bool) -> List[str]:
    problems = []
    if not platform.get("uri"):
        problems.append("no uri")
    sha = platform.get("sha256") or ""
    if not sha:
        problems.append("no sha256")
    elif not SHA256.match(sha) and not (allow_pending and sha == release.PENDING):
        problems.append(f"sha256 {sha!r} does not match {SHA256.pattern}")
    if not platform.get("bin"):
        problems.append("no bin")
    files = platform.get("files")
    if files is not None:
        if not files:
            problems.append("files is empty (leave it out, or list operations)")
        for op in files:
            if not op.get("from") or not op.get("to"):
                problems.append(f"files entry {op} needs from and to")
    selector = platform.get("selector")
    if not selector:
        problems.append("no selector")
    else:
        keys = list(selector.get("matchLabels") or {}) + [e.get("key") for e in selector.get("matchExpressions") or []]
        if not keys:
            problems.append("empty selector")
        problems += [f"selector key {k!r} is not os or arch" for k in keys if k not in ("os", "arch")]
    return problems


def matches(selector: Dict[str, Any], os_: str, arch: str) -> bool:
    labels = {"os": os_, "arch": arch}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        value, values, operator = labels.get(expr.get("key")), expr.get("values") or [], expr.get("operator")
        if (operator == "In" and value not in values) or (operator == "NotIn" and value in values) \
                or (operator == "DoesNotExist" and value is not None) or (operator == "Exists" and value is None):
            return False
    return True


def selection(manifest: Dict[str, Any]) -> List[str]:
    """Every platform matches a supported os/arch; no supported os/arch matches two platforms."""
    problems = []
    for index, platform in enumerate(platforms(manifest)):
        if not any(matches(platform.get("selector") or {}, o, a) for o, a in SUPPORTED):
            problems.append(f"platforms[{index}]'s selector matches no platform krew supports")
    for o, a in SUPPORTED:
        hits = [i for i, p in enumerate(platforms(manifest)) if matches(p.get("selector") or {}, o, a)]
        if len(hits) > 1:
            problems.append(f"platforms {hits} overlap: each selects {o}/{a}")
    return problems


def archive_problems(platform: Dict[str, Any], archive: Path) -> List[str]:
    """What krew would say installing this platform from this archive (sha256, bin, LICENSE)."""
    problems = []
    actual = release.sha256_file(archive)
    if platform.get("sha256") != actual:
        problems.append(f"sha256 {platform.get('sha256')} is not the archive's ({actual}): {archive}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            install = release.install_like_krew(archive, platform.get("files"), Path(tmp))
        except release.ReleaseError as exc:
            return problems + [f"krew could not install {archive.name}: {exc}"]
        binary = install / platform.get("bin", "")
        if not binary.is_file():
            problems.append(f"bin {platform.get('bin')!r} is not in the installed files of {archive.name}")
        elif not os_arch(platform)[0] == "windows" and not binary.stat().st_mode & 0o100:
            problems.append(f"bin {platform.get('bin')!r} is not executable")
        if not any(p.is_file() and p.name.lower() in LICENSE_FILES for p in install.rglob("*")):
            problems.append(f"no LICENSE among the installed files of {archive.name}")
    return problems


def local_archive(platform: Dict[str, Any], dists: Sequence[Path]) -> Optional[Path]:
    name = str(platform.get("uri") or "").rsplit("/", 1)[-1]
    return next((d / name for d in dists if name and (d / name).is_file()), None)


def check_manifest(path: Path, dists: Sequence[Path], complete: bool = False) -> List[str]:
    """Everything above, with each archive found in dists verified; complete: no PENDING entry."""
    manifest = load(path)
    problems = structural(manifest, path.stem, allow_pending=not complete) + selection(manifest)
    for platform in platforms(manifest):
        archive = local_archive(platform, dists)
        if archive is not None:
            problems += [f"{os_arch(platform)}: {p}" for p in archive_problems(platform, archive)]
        elif complete:
            problems.append(f"{os_arch(platform)}: {platform.get('uri')} is not in {', '.join(map(str, dists))}")
    return problems
