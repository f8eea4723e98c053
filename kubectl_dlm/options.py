"""Flags shared by several commands, and their parsing into model.Settings inputs.

kubectl does not pass its global flags to plugins (it refuses flags before the plugin name), so
every command parses --kubeconfig, --context and -n itself, plus the target side (--to-*).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import click

from kubectl_dlm import sync_address
from kubectl_dlm.errors import UsageError
from kubectl_dlm.model import SECRET_MODES, StorageMapping


def _compose(*decorators: Callable) -> Callable:
    def apply(func: Callable) -> Callable:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


source_options = _compose(
    click.option("--kubeconfig", metavar="PATH", help="Kubeconfig of the source cluster (default: $KUBECONFIG, ~/.kube/config)."),
    click.option("--context", metavar="NAME", help="Source kubeconfig context (default: the current context)."),
    click.option("-n", "--namespace", metavar="NS", help="Namespace of the source VMs (default: the context's namespace)."),
)

target_options = _compose(
    click.option("--to-context", metavar="NAME", help="Target context: another cluster (default: the source cluster)."),
    click.option("--to-kubeconfig", metavar="PATH", help="Kubeconfig for the target context (default: the source's)."),
    click.option("--to-namespace", metavar="NS", help="Target namespace (default: the source namespace)."),
)

selection_options = _compose(
    click.argument("vms", nargs=-1, metavar="[VM]..."),
    click.option("-l", "--selector", metavar="SELECTOR", default="", help="Select source VMs by label, e.g. app=db."),
)

mapping_options = _compose(
    click.option("--storage-class-map", "storage_class_map", multiple=True, metavar="SRC=DST",
                 help="Use storage class DST on the target for disks on SRC. Repeatable."),
    click.option("--network-map", multiple=True, metavar="SRC=DST",
                 help="Use Multus network DST (ns/name) on the target for SRC. Repeatable."),
    click.option("--claim-map", multiple=True, metavar="SRC=DST",
                 help="Give the target disk of claim SRC the claim name DST. Repeatable."),
    click.option("--mapping-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                 help="YAML file with storageClasses, networks and claims maps (see README)."),
    click.option("--migration-id", metavar="ID", help="Use this migration ID instead of the derived one."),
    click.option("--connect-url", metavar="HOST:PORT",
                 help="Target synchronization address: host:port, [v6]:port or dns:///host:port "
                      "(default: the target migration's, read live from the target)."),
    click.option("--fs-overhead", type=click.FloatRange(0, 0.45), default=None, metavar="FRACTION",
                 help="Filesystem overhead of the target's CDI, for Block disks landing on Filesystem "
                      "(default: the target CDIConfig's status.filesystemOverhead, else CDI's default 0.06)."),
    click.option("--secrets", type=click.Choice(SECRET_MODES), default=None,
                 help="Secret data in the bundle: include (stdout default), reference or omit (--output-dir default: reference)."),
)

# Per-migration tuning, carried out as a MigrationPolicy on the target (tuning.py). The booleans
# have a --no- form: a cluster that allows post-copy may be told not to for one migration.
tuning_options = _compose(
    click.option("--bandwidth", metavar="QUANTITY",
                 help="This migration's bandwidth per second, a Kubernetes quantity (64Mi; 0: no limit)."),
    click.option("--allow-post-copy/--no-allow-post-copy", default=None,
                 help="Switch to post-copy when the completion timeout is reached (default: the cluster's)."),
    click.option("--completion-timeout-per-gib", type=int, metavar="SECONDS",
                 help="Seconds per GiB of data the migration may take (KubeVirt's default: 150)."),
    click.option("--allow-auto-converge/--no-allow-auto-converge", default=None,
                 help="Let KubeVirt throttle the guest's CPUs so the migration converges (default: the cluster's)."),
    click.option("--max-downtime", metavar="DURATION",
                 help="Longest pause at switch-over, e.g. 300ms or 2s (KubeVirt's default: 900ms; needs the "
                      "target's MigrationStallDetection feature gate)."),
)


def parse_pairs(values: Iterable[str], flag: str) -> Dict[str, str]:
    pairs: Dict[str, str] = {}
    for value in values:
        src, sep, dst = value.partition("=")
        if not sep or not src or not dst:
            raise UsageError(f"{flag} {value!r} is not SRC=DST", f"example: {flag} standard=ceph-rbd")
        if src in pairs and pairs[src] != dst:
            raise UsageError(f"{flag} maps {src} twice ({pairs[src]} and {dst})")
        pairs[src] = dst
    return pairs


def load_mapping_file(path: Optional[Path]) -> Tuple[Dict[str, StorageMapping], Dict[str, str], Dict[str, str]]:
    """storageClasses: {SRC: DST | {storageClass, volumeMode, accessModes}}, networks: {SRC: DST}, claims: {SRC: DST}."""
    if path is None:
        return {}, {}, {}
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = YAML(typ="safe", pure=True).load(path.read_text()) or {}
    except (YAMLError, OSError) as exc:
        raise UsageError(f"--mapping-file {path}: cannot read it: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or set(data) - {"storageClasses", "networks", "claims"}:
        raise UsageError(f"--mapping-file {path}: expected only the keys storageClasses, networks, claims")
    storage: Dict[str, StorageMapping] = {}
    for src, dst in (data.get("storageClasses") or {}).items():
        if isinstance(dst, str):
            storage[str(src)] = StorageMapping(storage_class=dst)
        elif isinstance(dst, dict) and set(dst) <= {"storageClass", "volumeMode", "accessModes"}:
            if dst.get("volumeMode") not in (None, "Block", "Filesystem"):
                raise UsageError(f"--mapping-file {path}: volumeMode of {src} must be Block or Filesystem")
            modes = dst.get("accessModes")
            storage[str(src)] = StorageMapping(dst.get("storageClass"), dst.get("volumeMode"), tuple(modes) if modes else None)
        else:
            raise UsageError(f"--mapping-file {path}: storageClasses.{src} must be a class name or "
                             "{storageClass, volumeMode, accessModes}")
    return storage, _str_map(data, "networks", path), _str_map(data, "claims", path)


def _str_map(data: Dict[str, Any], key: str, path: Path) -> Dict[str, str]:
    found = data.get(key) or {}
    if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
        raise UsageError(f"--mapping-file {path}: {key} must map names to names")
    return {str(k): v for k, v in found.items()}


def check_connect_url(url: Optional[str]) -> Optional[str]:
    """The same syntax `check` judges a published address by (sync_address.split)."""
    if url is None:
        return None
    try:
        sync_address.split(url)
    except sync_address.AddressError as exc:
        raise UsageError(f"--connect-url {exc}", f"examples: {sync_address.EXAMPLES} (it is a gRPC target)") from None
    return url


class ParallelType(click.ParamType):
    """A positive number of VMs, or `auto` (the clusters' own migration limits, see parallelism.py)."""

    name = "N|auto"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if value == "auto" or isinstance(value, int) and value >= 1:
            return value
        try:
            number = int(str(value))
        except ValueError:
            number = 0
        if number < 1:
            self.fail(f"{value!r} is neither a positive number nor 'auto'", param, ctx)
        return number


parallel_option = click.option(
    "--parallel", type=ParallelType(), default=1, show_default=True,
    help="VMs migrated at the same time (as many more get their disks and receiving VM ready meanwhile); "
         "auto: as many as the clusters' parallelMigrationsPerCluster and parallelOutboundMigrationsPerNode let run.")
