#!/usr/bin/env python3
"""The release build: a self-contained kubectl-dlm for this machine, its archive, the krew manifest.

    bash packaging/release.sh                  # = python3 packaging/release.py all

`all` freezes kubectl-dlm with PyInstaller (in a venv under build/release/, so the Python that
runs this script is left alone), packs it with the LICENSE into
dist/kubectl-dlm_v<version>_<os>_<arch>.tar.gz (.zip on Windows), prints its sha256 and fills
krew/dlm.yaml from krew/dlm.yaml.in. The executable needs neither Python nor the project's
dependencies; the templates and the built-in example are inside it.

Other commands: `build` (no manifest), `manifest` (fill krew/dlm.yaml from every archive found in
--dist), `check` (validate krew/dlm.yaml as krew's index does), `digest` (the source hash that
keys the build cache), `version`. The same script runs on macOS and Windows in .github/workflows/release.yml.

Manifest policy: a platform's sha256 comes from its archive when it is in --dist; else the value
already in krew/dlm.yaml for the same uri is kept; else it is the PENDING marker, which krew
would reject: a manifest with a PENDING entry is not ready to submit (`check --complete` says so).

Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import argparse
import configparser
import fnmatch
import gzip
import hashlib
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
NAME = "kubectl-dlm"
DEFAULT_REPO = "kubevirt-tools/kubectl-dlm"
# The os/arch pairs we publish, in manifest order.
PLATFORMS: Tuple[Tuple[str, str], ...] = (
    ("linux", "amd64"), ("linux", "arm64"), ("darwin", "amd64"), ("darwin", "arm64"), ("windows", "amd64"))
PENDING = "PENDING: filled in by the release workflow"
TEMPLATE = ROOT / "krew" / "dlm.yaml.in"
MANIFEST = ROOT / "krew" / "dlm.yaml"
CONSTRAINTS = ROOT / "packaging" / "constraints.txt"
# Every file that ends up in the executable, or decides how it is built.
SOURCES = ("kubectl_dlm/**/*.py", "kubectl_dlm/example.yaml", "kubectl_dlm/example.json", "templates/*.yaml.j2", "packaging/entry.py",
           "packaging/kubectl-dlm.spec", "packaging/constraints.txt", "packaging/release.py", "setup.cfg",
           "LICENSE")
# 1980-01-01: the earliest time a zip entry can carry; archives get it unless SOURCE_DATE_EPOCH is set.
EPOCH = 315532800


class ReleaseError(Exception):
    pass


# --- facts -------------------------------------------------------------------------------------

def version() -> str:
    text = (ROOT / "kubectl_dlm" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if not found:
        raise ReleaseError("kubectl_dlm/__init__.py has no __version__")
    return found.group(1)


def host_platform() -> Tuple[str, str]:
    system = platform.system().lower()
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    if system not in ("linux", "darwin", "windows") or arch is None:
        raise ReleaseError(f"no release build for {system}/{machine}")
    return system, arch


def archive_name(ver: str, os_: str, arch: str) -> str:
    return f"{NAME}_v{ver}_{os_}_{arch}.{'zip' if os_ == 'windows' else 'tar.gz'}"


def binary_name(os_: str) -> str:
    return NAME + (".exe" if os_ == "windows" else "")


def source_files() -> List[Path]:
    found = set()
    for pattern in SOURCES:
        found.update(p for p in ROOT.glob(pattern) if p.is_file() and "__pycache__" not in p.parts)
    return sorted(found)


def source_digest(onefile: bool) -> str:
    """Hash of what the executable is made of, plus the Python and platform that freeze it."""
    digest = hashlib.sha256()
    digest.update(f"{sys.version_info[:3]} {host_platform()} onefile={onefile}\n".encode())
    for path in source_files():
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def requirements() -> List[str]:
    """install_requires and the `release` extra, as setup.cfg states them."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    lines = config.get("options", "install_requires").splitlines()
    lines += config.get("options.extras_require", "release", fallback="").splitlines()
    found = [line.split("#")[0].strip() for line in lines]
    if not any(r.lower().startswith("pyinstaller") for r in found):
        raise ReleaseError("setup.cfg has no `release` extra naming pyinstaller")
    return [r for r in found if r]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def clean_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(extra)
    return env


def say(message: str) -> None:
    print(f"release: {message}", flush=True)


# --- build -------------------------------------------------------------------------------------

def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_venv(work: Path) -> Path:
    """A venv with PyInstaller and the runtime dependencies, reused while its inputs are unchanged."""
    reqs = requirements()
    key = hashlib.sha256("\n".join([sys.version, str(host_platform()), CONSTRAINTS.read_text(encoding="utf-8"),
                                    *reqs]).encode()).hexdigest()[:12]
    venv = work / f"venv-{key}"
    python = venv_python(venv)
    if (venv / ".complete").is_file():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    for old in work.glob("venv-*"):
        shutil.rmtree(old, ignore_errors=True)
    say(f"creating the build venv {venv.relative_to(ROOT) if venv.is_relative_to(ROOT) else venv}")
    run([sys.executable, "-m", "venv", str(venv)])
    run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-c", str(CONSTRAINTS), *reqs])
    (venv / ".complete").write_text("")
    return python


def run(cmd: Sequence[str], **kwargs) -> None:
    result = subprocess.run(list(cmd), **kwargs)
    if result.returncode:
        raise ReleaseError(f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} ... failed (exit {result.returncode})")


def freeze(work: Path, onefile: bool, force: bool) -> Path:
    """PyInstaller output for the current sources; reused when the sources did not change."""
    digest = source_digest(onefile)[:16]
    bundle = work / f"bundle-{digest}"
    if (bundle / ".complete").is_file() and not force:
        say(f"reusing the executable built from these sources ({bundle.name})")
        return bundle
    python = ensure_venv(work)
    shutil.rmtree(bundle, ignore_errors=True)
    scratch = work / "pyinstaller-work"
    shutil.rmtree(scratch, ignore_errors=True)
    say(f"freezing with PyInstaller ({'one file' if onefile else 'one folder'})")
    started = time.monotonic()
    env = clean_env(DLM_ONEFILE="1" if onefile else "0", PYTHONHASHSEED="0",
                    SOURCE_DATE_EPOCH=os.environ.get("SOURCE_DATE_EPOCH", str(EPOCH)))
    run([str(python), "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN", "--distpath",
         str(bundle / "dist"), "--workpath", str(scratch), str(ROOT / "packaging" / "kubectl-dlm.spec")],
        env=env, cwd=str(work))
    shutil.rmtree(scratch, ignore_errors=True)
    say(f"froze in {time.monotonic() - started:.0f}s")
    smoke_test(executable(bundle, onefile))
    (bundle / ".complete").write_text(digest)
    for old in sorted(work.glob("bundle-*"), key=lambda p: p.stat().st_mtime)[:-2]:
        if old != bundle:
            shutil.rmtree(old, ignore_errors=True)
    return bundle


def executable(bundle: Path, onefile: bool) -> Path:
    os_, _ = host_platform()
    name = binary_name(os_)
    return bundle / "dist" / name if onefile else bundle / "dist" / NAME / name


def smoke_test(exe: Path) -> None:
    """The executable starts with no Python around it and knows its version."""
    with tempfile.TemporaryDirectory() as empty:
        env = {"PATH": empty, "HOME": empty, "USERPROFILE": empty, "SYSTEMROOT": os.environ.get("SYSTEMROOT", ""),
               "TMP": tempfile.gettempdir(), "TEMP": tempfile.gettempdir(), "TMPDIR": tempfile.gettempdir()}
        result = subprocess.run([str(exe), "version"], capture_output=True, text=True, env=env, cwd=empty)
    expected = f"{NAME} {version()}"
    if result.returncode or result.stdout.strip() != expected:
        raise ReleaseError(f"the frozen {exe.name} does not start: exit {result.returncode}, "
                           f"stdout {result.stdout.strip()!r}, stderr {result.stderr.strip()[-500:]!r}")


# --- archive -----------------------------------------------------------------------------------

def archive_entries(bundle: Path, onefile: bool) -> List[Tuple[str, Path]]:
    """(name in the archive, file) pairs: kubectl-dlm/<the executable and its files>, and LICENSE."""
    os_, _ = host_platform()
    if onefile:
        exe = executable(bundle, onefile)
        entries = [(f"{NAME}/{exe.name}", exe)]
    else:
        top = bundle / "dist" / NAME
        entries = []
        for path in sorted(top.rglob("*")):
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                # krew unpacks regular files and directories only ("unable to handle file type").
                raise ReleaseError(f"{path} is not a regular file or directory; krew cannot install it "
                                   "(build with --onefile on this platform)")
            if path.is_file():
                entries.append((f"{NAME}/{path.relative_to(top).as_posix()}", path))
    entries.append(("LICENSE", ROOT / "LICENSE"))
    return entries


def _is_executable(arcname: str, path: Path) -> bool:
    return arcname.endswith((NAME, ".exe")) or bool(path.stat().st_mode & stat.S_IXUSR) or ".so" in path.name


def write_archive(entries: List[Tuple[str, Path]], dest: Path) -> None:
    """A reproducible archive: sorted names, fixed times and owners, directories listed."""
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", EPOCH))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    dirs = sorted({"/".join(name.split("/")[:i]) for name, _ in entries for i in range(1, name.count("/") + 1)})
    if dest.name.endswith(".zip"):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            stamp = time.gmtime(max(mtime, EPOCH))[:6]
            for name in dirs:
                info = zipfile.ZipInfo(name + "/", stamp)
                info.external_attr = (0o40755 << 16) | 0x10
                archive.writestr(info, b"")
            for name, path in sorted(entries):
                info = zipfile.ZipInfo(name, stamp)
                info.external_attr = (0o100755 if _is_executable(name, path) else 0o100644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
    else:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for name in dirs:
                info = tarfile.TarInfo(name)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
                archive.addfile(info)
            for name, path in sorted(entries):
                info = tarfile.TarInfo(name)
                info.size, info.mtime = path.stat().st_size, mtime
                info.mode = 0o755 if _is_executable(name, path) else 0o644
                with open(path, "rb") as stream:
                    archive.addfile(info, stream)
    os.replace(tmp, dest)


def glibc_floor(paths: Iterable[Path]) -> Optional[str]:
    """The newest GLIBC_x.y symbol version the ELF files ask for (the oldest glibc they run on)."""
    best: Optional[Tuple[int, int]] = None
    for path in paths:
        if path.is_file() and path.read_bytes()[:4] == b"\x7fELF":
            for major, minor in re.findall(rb"GLIBC_(\d+)\.(\d+)", path.read_bytes()):
                best = max(best or (0, 0), (int(major), int(minor)))
    return f"{best[0]}.{best[1]}" if best else None


def build(dist: Path, work: Path, onefile: Optional[bool], force: bool) -> Path:
    os_, arch = host_platform()
    if onefile is None:
        # One folder starts faster, but only Linux runs it safely through krew's symlink: Windows
        # does not find _internal/ from a symlinked .exe, and macOS bundles contain symlinks.
        onefile = os_ != "linux"
    ver = version()
    started = time.monotonic()
    bundle = freeze(work, onefile, force)
    entries = archive_entries(bundle, onefile)
    dest = dist / archive_name(ver, os_, arch)
    write_archive(entries, dest)
    size = dest.stat().st_size
    say(f"{dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}: {size / 1e6:.1f} MB, "
        f"{len(entries)} files, sha256 {sha256_file(dest)} ({time.monotonic() - started:.0f}s)")
    if os_ == "linux" and not onefile:  # a one-file build keeps its libraries compressed: nothing to read
        floor = glibc_floor(path for _, path in entries)
        if floor:
            say(f"runs on Linux with glibc >= {floor} (the glibc of the machine that built it)")
    return dest


# --- manifest ----------------------------------------------------------------------------------

def uri(repo: str, ver: str, os_: str, arch: str) -> str:
    return f"https://github.com/{repo}/releases/download/v{ver}/{archive_name(ver, os_, arch)}"


def read_shas(text: str) -> Dict[str, str]:
    """uri -> sha256 of a manifest that render_manifest wrote."""
    found: Dict[str, str] = {}
    current = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("uri:"):
            current = stripped[4:].strip().strip('"')
        elif stripped.startswith("sha256:") and current:
            found[current] = stripped[7:].strip().strip('"')
            current = None
    return found


def render_manifest(template: str, ver: str, repo: str, shas: Dict[Tuple[str, str], str]) -> str:
    # The template's header comment explains the placeholders; the manifest says where it came from.
    text = template.split("\n# ---\n", 1)[-1].replace("{{version}}", ver).replace("{{repo}}", repo)
    for os_, arch in PLATFORMS:
        text = text.replace(f"{{{{sha256 {os_}/{arch}}}}}", f'"{shas.get((os_, arch), PENDING)}"')
    left = re.findall(r"\{\{[^}]*\}\}", text)
    if left:
        raise ReleaseError(f"{TEMPLATE.name} has unknown placeholders: {', '.join(sorted(set(left)))}")
    return ("# Generated by packaging/release.py from krew/dlm.yaml.in; do not edit by hand.\n"
            f"# A sha256 of \"{PENDING}\" is a platform not built yet: krew rejects it.\n" + text)


def fill_manifest(dists: Sequence[Path], repo: str, template: Path = TEMPLATE, manifest: Path = MANIFEST
                  ) -> Dict[Tuple[str, str], str]:
    """Write the manifest; returns how each platform's sha256 was found: built, kept or pending."""
    ver = version()
    old = read_shas(manifest.read_text(encoding="utf-8")) if manifest.is_file() else {}
    shas: Dict[Tuple[str, str], str] = {}
    how: Dict[Tuple[str, str], str] = {}
    for os_, arch in PLATFORMS:
        name = archive_name(ver, os_, arch)
        archive = next((d / name for d in dists if (d / name).is_file()), None)
        address = uri(repo, ver, os_, arch)
        if archive is not None:
            shas[(os_, arch)] = sha256_file(archive)
            how[(os_, arch)] = f"built: {archive}"
            previous = old.get(address)
            if previous and previous != PENDING and previous != shas[(os_, arch)]:
                # Harmless after a local rebuild; not after a release, whose published archive it was.
                how[(os_, arch)] += f" (replaces sha256 {previous[:12]}...)"
        elif old.get(address) and old[address] != PENDING:
            shas[(os_, arch)] = old[address]
            how[(os_, arch)] = "kept from the previous manifest"
        else:
            how[(os_, arch)] = "pending"
    manifest.write_text(render_manifest(template.read_text(encoding="utf-8"), ver, repo, shas), encoding="utf-8")
    for (os_, arch), text in how.items():
        say(f"krew/dlm.yaml {os_}/{arch}: {text}")
    return how


# --- krew-style install (used by check and by the tests) ---------------------------------------

def _suspicious(name: str) -> bool:
    return ".." in name or name.startswith(("/", "\\"))


def extract_like_krew(archive: Path, dest: Path) -> None:
    """Unpack as krew does: regular files and directories only, no '..' or absolute names."""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zipped:
            for info in zipped.infolist():
                if _suspicious(info.filename):
                    raise ReleaseError(f"krew refuses the archive entry {info.filename!r}")
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise ReleaseError(f"{info.filename} is a symlink; krew would write it as a plain file")
                zipped.extract(info, dest)
                mode = (info.external_attr >> 16) & 0o777
                if mode and not info.is_dir():
                    os.chmod(dest / info.filename, mode)
        return
    with tarfile.open(archive, "r:gz") as tarred:
        for member in tarred.getmembers():
            if _suspicious(member.name):
                raise ReleaseError(f"krew refuses the archive entry {member.name!r}")
            if not (member.isreg() or member.isdir()):
                raise ReleaseError(f"{member.name} is neither a regular file nor a directory: "
                                   "krew stops with 'unable to handle file type'")
            target = dest / member.name
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with tarred.extractfile(member) as src, open(target, "wb") as out:  # type: ignore[union-attr]
                shutil.copyfileobj(src, out)
            os.chmod(target, member.mode & 0o777)


def _glob(base: Path, pattern: str) -> List[Path]:
    """Go's filepath.Glob: '*' also matches names that start with a dot."""
    found = [base]
    for part in pattern.split("/"):
        if part in ("", "."):
            continue
        found = [child for parent in found if parent.is_dir()
                 for child in sorted(parent.iterdir()) if fnmatch.fnmatchcase(child.name, part)]
    return found


def install_like_krew(archive: Path, files: Optional[List[dict]], dest: Path) -> Path:
    """Extract, then apply the manifest's `files` operations; returns the install directory."""
    extracted, install = dest / "extracted", dest / "install"
    extracted.mkdir(parents=True)
    install.mkdir(parents=True)
    extract_like_krew(archive, extracted)
    for op in files if files is not None else [{"from": "*", "to": "."}]:
        source, to = op["from"], op["to"]
        if os.path.normpath(to) != to:
            raise ReleaseError(f"files[].to {to!r} is not a clean path")
        direct = extracted / source
        if direct.exists():  # krew: a path that exists is moved as it is, not globbed
            moves = [(direct, install / (direct.name if to == "." else to))]
        else:
            matches = _glob(extracted, source)
            if not matches:
                raise ReleaseError(f"no files in the archive match files[].from {source!r}")
            moves = [(m, install / to / m.name) for m in matches]
        for src, dst in moves:
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.is_dir():
                shutil.rmtree(dst)
            shutil.move(str(src), str(dst))
    return install


# --- command line ------------------------------------------------------------------------------

def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="packaging/release.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="all",
                        choices=("all", "build", "manifest", "check", "digest", "version"))
    parser.add_argument("--dist", type=Path, action="append",
                        help="where archives go (build) or are found (manifest, check); default dist/")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "release", help="build directory (venv, bundles)")
    parser.add_argument("--repo", default=os.environ.get("DLM_RELEASE_REPO", DEFAULT_REPO),
                        help=f"GitHub owner/name in the manifest's uris (default {DEFAULT_REPO})")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--onefile", dest="onefile", action="store_true", default=None,
                      help="one self-extracting file (default on macOS and Windows)")
    mode.add_argument("--onedir", dest="onefile", action="store_false", help="one folder (default on Linux)")
    parser.add_argument("--force", action="store_true", help="freeze again even if the sources did not change")
    parser.add_argument("--complete", action="store_true", help="check: every platform must be filled in")
    args = parser.parse_args(argv)
    dists = args.dist or [ROOT / "dist"]
    try:
        if args.command == "version":
            print(version())
        if args.command == "digest":
            onefile = host_platform()[0] != "linux" if args.onefile is None else args.onefile
            print(source_digest(onefile))
        if args.command in ("all", "build"):
            build(dists[0], args.work, args.onefile, args.force)
        if args.command in ("all", "manifest"):
            fill_manifest(dists, args.repo)
        if args.command == "check":
            sys.path.insert(0, str(ROOT / "packaging"))
            import krewcheck

            problems = krewcheck.check_manifest(MANIFEST, dists, complete=args.complete)
            for problem in problems:
                print(f"krew/dlm.yaml: {problem}", file=sys.stderr)
            if problems:
                return 1
            say("krew/dlm.yaml passes krew's checks" + ("" if args.complete else " (PENDING entries allowed)"))
    except ReleaseError as exc:
        print(f"release: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
