"""The command line: a click group whose commands live in kubectl_dlm/commands/, one module each.

Commands are imported only when used, so `kubectl dlm --help` stays fast. This is the only place
that turns a DlmError into `error: ...` on stderr and an exit code.
"""

from __future__ import annotations

import importlib
import sys
from typing import List, Optional

import click

from kubectl_dlm import __version__, errors

# name -> "module:attribute"; one line per command, in the order `--help` lists them.
COMMANDS = {
    "render": "kubectl_dlm.commands.render:render",
    "migrate": "kubectl_dlm.commands.migrate:migrate",
    "apply": "kubectl_dlm.commands.apply:apply",
    "status": "kubectl_dlm.commands.status:status",
    "cancel": "kubectl_dlm.commands.cancel:cancel",
    "cleanup": "kubectl_dlm.commands.cleanup:cleanup",
    "verify": "kubectl_dlm.commands.verify:verify",
    "retire": "kubectl_dlm.commands.retire:retire",
    "check": "kubectl_dlm.commands.check:check",
    "trust": "kubectl_dlm.commands.trust:trust",
    "rbac": "kubectl_dlm.commands.rbac:rbac",
    "report": "kubectl_dlm.commands.report:report",
    "version": "kubectl_dlm.commands.version:version",
    "completion": "kubectl_dlm.commands.completion:completion",
    "__complete": "kubectl_dlm.commands.completion:complete",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> List[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        if name not in COMMANDS:
            return None
        module, _, attribute = COMMANDS[name].partition(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="kubectl-dlm", message="%(prog)s %(version)s")
def cli() -> None:
    """Move running KubeVirt VMs between namespaces and clusters with decentralized live migration.

    \b
    Start with the built-in example (no cluster needed):
      kubectl dlm render --example
    """


def main(argv: Optional[List[str]] = None) -> None:
    exit_now(run(argv))


def exit_now(code: int) -> None:
    """Exit without tearing the interpreter down. With the kubernetes client loaded, the teardown
    of its few hundred modules costs about 90 ms of CPU after the last line is printed: 1-3 s of
    wall time on a loaded machine (benchmarks/kubevirt_migrate.py measured the tail of `migrate`).
    The atexit handlers still run (the client deletes the temporary files holding a kubeconfig's
    certificate data); while another non-daemon thread is alive, the normal exit waits for it."""
    import atexit
    import os
    import threading

    if any(t is not threading.main_thread() and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a reader that went away (`| head`), or a closed stream
            pass
    atexit._run_exitfuncs()
    os._exit(code)


def run(argv: Optional[List[str]] = None) -> int:
    try:
        result = cli.main(args=argv, prog_name="kubectl dlm", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except errors.DlmError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return errors.INTERRUPTED
    except click.UsageError as exc:
        # One line, like every other error: the usage banner click prints would bury it.
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{where}", err=True)
        return errors.USAGE
    except click.ClickException as exc:
        exc.show()
        return errors.USAGE
    except BrokenPipeError:
        return 0
