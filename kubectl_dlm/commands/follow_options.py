"""Flags of the commands that follow a migration (migrate, apply, status --watch)."""

import click

from kubectl_dlm.options import _compose

# status has its own -o (formats.FORMATS) and maps it onto the live display for --watch.
follow_flags = _compose(
    click.option("--timeout", type=click.FloatRange(min=1), default=3600, show_default=True, metavar="SECONDS",
                 help="Give up following after this long; the migration is left as it is."),
    click.option("--sync-timeout", type=click.FloatRange(min=1), default=300, show_default=True, metavar="SECONDS",
                 help="Give up if the two sides have not connected after this long."),
    click.option("--prometheus-url", metavar="URL",
                 help="Prometheus that scrapes KubeVirt, for bytes transferred, rate and ETA."),
)

follow_options = _compose(
    follow_flags,
    click.option("-o", "--output", type=click.Choice(("auto", "plain", "json")), default="auto", show_default=True,
                 help="auto: live lines on a terminal, timestamped lines otherwise; json: one event per line."),
)
