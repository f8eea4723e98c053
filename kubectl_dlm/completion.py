"""Shell completion in cobra's `__complete` protocol, the one kubectl speaks to plugins.

kubectl >= 1.26 completes `kubectl dlm <TAB>` by running the executable `kubectl_complete-dlm`
found on PATH with the words typed after `dlm`, the last one being the word under the cursor
('' for a new word): `kubectl dlm render my-<TAB>` runs `kubectl_complete-dlm render my-`. The
answer is one candidate per line (`value`, or `value<TAB>description`), then a last line
`:<directive>`, cobra's ShellCompDirective bit set (below). `kubectl-dlm __complete WORDS...` answers
the same way, for the scripts of `kubectl dlm completion` and for a hand-made kubectl_complete-dlm.

Commands, flags and choices come from the click command tree, so they never drift from `--help`.
VM names and namespaces come from the cluster that the flags typed so far select (--kubeconfig,
--context, -n; --to-* for the target side), contexts from the kubeconfig, VM names from the file
of `-f FILE` when one is given. The `kubernetes` package is imported only to list from a
cluster. Nothing is ever written to stderr (kubectl passes it to the terminal, over the prompt):
an unreachable cluster or any other failure just gives no candidates. Set BASH_COMP_DEBUG_FILE
(cobra's convention) to a file name to see why.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import click

# cobra's ShellCompDirective (spf13/cobra completions.go): bits the shell scripts act on.
ERROR = 1  # something went wrong: complete nothing
NO_SPACE = 2  # no space after the completion
NO_FILE_COMP = 4  # no file names when there are no candidates
FILTER_FILE_EXT = 8  # the candidates are file extensions to filter file names by
FILTER_DIRS = 16  # complete directory names only
KEEP_ORDER = 32  # do not sort the candidates
DEFAULT = 0  # candidates, else the shell's file name completion

# A completion waits for at most this long on a cluster, with no retry: a TAB must not hang.
CLUSTER_TIMEOUT = 5
# Value metavars that mean "a file name", for options declared as plain strings.
FILE_METAVARS = {"FILE", "PATH"}

Candidate = Tuple[str, str]  # value, description ('' for none)


@dataclass
class Completion:
    candidates: List[Candidate] = field(default_factory=list)
    directive: int = NO_FILE_COMP

    def render(self) -> str:
        lines = [value if not help_ else f"{value}\t{help_}" for value, help_ in self.candidates]
        lines.append(f":{self.directive}")
        return "\n".join(lines) + "\n"


def complete(words: Sequence[str], lister: Optional["Lister"] = None) -> Completion:
    """Complete the last of `words` (the words after `kubectl dlm`; the last may be '')."""
    from click.shell_completion import _resolve_context, _resolve_incomplete

    from kubectl_dlm.cli import cli

    args, incomplete = (list(words[:-1]), words[-1]) if words else ([], "")
    ctx = _resolve_context(cli, {}, "kubectl dlm", list(args))
    handler, incomplete = _resolve_incomplete(ctx, args, incomplete)
    lister = lister or Lister()
    params = dict(ctx.params)

    if isinstance(handler, click.Argument) and handler.name == "vms":
        already = set(params.get("vms") or ())
        names = lister.vms(params)
        return _plain([(n, h) for n, h in names if n.startswith(incomplete) and n not in already])
    if isinstance(handler, click.Option):
        found = _option_values(handler, params, incomplete, lister)
        if found is not None:
            return found
    items = handler.shell_complete(ctx, incomplete)
    if any(item.type == "dir" for item in items):
        return Completion([], FILTER_DIRS)
    if any(item.type == "file" for item in items):
        return Completion([], DEFAULT)
    return _plain([(str(item.value), _describe(ctx, handler, item)) for item in items])


def _option_values(option: click.Option, params: Dict[str, Any], incomplete: str,
                   lister: "Lister") -> Optional[Completion]:
    """Values of options whose candidates click cannot know; None to let click answer."""
    if option.name in ("context", "to_context"):
        kubeconfig = params.get("kubeconfig")
        if option.name == "to_context":
            kubeconfig = params.get("to_kubeconfig") or kubeconfig
        return _plain([(n, h) for n, h in lister.contexts(kubeconfig) if n.startswith(incomplete)])
    if option.name in ("namespace", "to_namespace"):
        names = lister.namespaces(params, target=option.name == "to_namespace")
        return _plain([(n, h) for n, h in names if n.startswith(incomplete)])
    if isinstance(option.type, click.types.StringParamType) and (option.metavar or "").upper() in FILE_METAVARS:
        return Completion([], DEFAULT)
    return None


def _describe(ctx: click.Context, handler: Any, item: Any) -> str:
    if isinstance(handler, click.Group):  # click cuts command help at 45 characters
        command = handler.get_command(ctx, str(item.value))
        if command is not None:
            return command.get_short_help_str(limit=80)
    return _short(item.help)


def _plain(candidates: List[Candidate]) -> Completion:
    return Completion(candidates, NO_FILE_COMP)


def _short(text: Optional[str]) -> str:
    """First sentence of a help text, on one line (descriptions are shown next to candidates)."""
    text = " ".join((text or "").split())
    text = re.split(r"(?<=[A-Za-z0-9)]\.) (?=[A-Z])", text, maxsplit=1)[0]
    return text if len(text) <= 80 else text[:77] + "..."


class Lister:
    """What the completion reads outside the command tree: kubeconfig contexts, the cluster, -f files."""

    def contexts(self, kubeconfig: Optional[str]) -> List[Candidate]:
        found: Dict[str, str] = {}
        for path in _kubeconfig_files(kubeconfig):
            with _quiet(f"read contexts from {path}"):
                from ruamel.yaml import YAML

                with open(os.path.expanduser(path), encoding="utf-8") as stream:
                    data = YAML(typ="safe", pure=True).load(stream) or {}
                for entry in data.get("contexts") or []:
                    name, context = entry.get("name"), entry.get("context") or {}
                    if name and name not in found:  # the first file that names a context wins, as in kubectl
                        where = context.get("cluster") or ""
                        if context.get("namespace"):
                            where += f" ({context['namespace']})"
                        found[name] = where
        return sorted(found.items())

    def vms(self, params: Dict[str, Any]) -> List[Candidate]:
        if params.get("filename"):
            return self._vms_in_file(params["filename"], params.get("namespace"))
        with _quiet("list VMs") as ok:
            from kubectl_dlm import kube

            with _short_requests(kube):
                cluster = kube.connect(params.get("kubeconfig"), params.get("context"))
                namespace = params.get("namespace") or cluster.namespace
                body = kube.call(cluster, "GET", _list_path("VirtualMachine", namespace),
                                 f"list VMs in namespace {namespace}", attempts=1)
            ok.result = sorted((_name(vm), _vm_status(vm)) for vm in (body or {}).get("items") or [])
        return ok.result or []

    def namespaces(self, params: Dict[str, Any], target: bool = False) -> List[Candidate]:
        kubeconfig, context = params.get("kubeconfig"), params.get("context")
        if target and (params.get("to_context") or params.get("to_kubeconfig")):
            kubeconfig, context = params.get("to_kubeconfig") or kubeconfig, params.get("to_context")
        with _quiet("list namespaces") as ok:
            from kubectl_dlm import kube

            with _short_requests(kube):
                cluster = kube.connect(kubeconfig, context)
                body = kube.call(cluster, "GET", _list_path("Namespace", None), "list namespaces", attempts=1)
            ok.result = sorted((_name(ns), "") for ns in (body or {}).get("items") or [])
        return ok.result or []

    @staticmethod
    def _vms_in_file(filename: str, namespace: Optional[str]) -> List[Candidate]:
        if filename == "-":
            return []  # stdin belongs to the shell while completing
        with _quiet(f"read VMs from {filename}") as ok:
            from kubectl_dlm import load

            with open(os.path.expanduser(filename), encoding="utf-8") as stream:
                source = load.read(stream, filename, namespace or "default")
            ok.result = sorted(
                (_name(obj), (obj.get("metadata") or {}).get("namespace") or "")
                for obj in source.objects.values()
                if obj.get("kind") == "VirtualMachine"
                and (not namespace or (obj.get("metadata") or {}).get("namespace") == namespace))
        return ok.result or []


def _name(obj: Dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _vm_status(vm: Dict[str, Any]) -> str:
    return str((vm.get("status") or {}).get("printableStatus") or "")


def _list_path(kind: str, namespace: Optional[str]) -> str:
    from kubectl_dlm.model import KINDS

    group, version, plural, namespaced = KINDS[kind]
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    if namespaced and namespace:
        base += f"/namespaces/{namespace}"
    return f"{base}/{plural}"


def _kubeconfig_files(kubeconfig: Optional[str]) -> List[str]:
    if kubeconfig:
        return [kubeconfig]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [p for p in env.split(os.pathsep) if p]
    return ["~/.kube/config"]


class _Outcome:
    result: Any = None


@contextlib.contextmanager
def _quiet(what: str) -> Iterator[_Outcome]:
    """Run a lookup with warnings and stderr silenced; any failure leaves outcome.result None."""
    outcome = _Outcome()
    started = time.monotonic()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield outcome
    except Exception as exc:  # noqa: BLE001 - a completion never fails loudly
        outcome.result = None
        _debug(f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    else:
        _debug(f"{what}: {len(outcome.result or ())} found in {time.monotonic() - started:.2f}s")


@contextlib.contextmanager
def _short_requests(kube: Any) -> Iterator[None]:
    """kube.REQUEST_TIMEOUT is sized for real work; a TAB gets CLUSTER_TIMEOUT."""
    saved = kube.REQUEST_TIMEOUT
    kube.REQUEST_TIMEOUT = CLUSTER_TIMEOUT
    try:
        yield
    finally:
        kube.REQUEST_TIMEOUT = saved


def _debug(message: str) -> None:
    path = os.environ.get("BASH_COMP_DEBUG_FILE")
    if path:
        with contextlib.suppress(OSError), open(path, "a", encoding="utf-8") as out:
            out.write(f"kubectl-dlm completion: {message}\n")


def respond(words: Sequence[str], write: Optional[Callable[[str], Any]] = None) -> None:
    """Print the answer for `words`; never raises, never writes to stderr."""
    write = write or sys.stdout.write
    try:
        answer = complete(words)
    except Exception as exc:  # noqa: BLE001
        _debug(f"completing {list(words)!r}: {type(exc).__name__}: {exc}")
        answer = Completion([], ERROR)
    write(answer.render())


def main(argv: Optional[Sequence[str]] = None) -> None:
    """The `kubectl_complete-dlm` executable: kubectl passes the words after `dlm`."""
    respond(sys.argv[1:] if argv is None else list(argv))
    sys.stdout.flush()
    sys.exit(0)


if __name__ == "__main__":
    main()
