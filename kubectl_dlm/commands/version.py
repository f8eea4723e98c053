"""`kubectl dlm version`."""

import click

from kubectl_dlm import __version__


@click.command()
def version() -> None:
    """Print the version of kubectl-dlm."""
    click.echo(f"kubectl-dlm {__version__}")
