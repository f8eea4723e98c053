"""`kubectl dlm report`: one archive for a bug report or a support case. Pure.

What goes in is decided here from what was read (report_gather.py reads): both sides' VM, VMI,
migrations, DataVolumes and PVCs, the KubeVirt CR, the Events about those objects, and the
plugin's version. Secrets are never read, so their values cannot leak; everything that is not
in the archive is listed in its README.md with the reason, nothing is dropped silently.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from kubectl_dlm import emit
from kubectl_dlm.model import Obj, meta


@dataclass
class Contents:
    files: Dict[str, str] = field(default_factory=dict)  # path in the archive -> text
    left_out: List[str] = field(default_factory=list)  # what is not in it, and why

    def add(self, path: str, obj: Obj) -> None:
        self.files[path] = emit.dump(obj)


def volume_claims(vm: Optional[Obj]) -> Tuple[Set[str], Set[str], Set[str]]:
    """(DataVolume names, PVC names, Secret names) the VM's volumes use (the PVC of a DataVolume has its name)."""
    spec = (((vm or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    dvs, pvcs, secrets = set(), set(), set()
    for volume in spec.get("volumes") or []:
        if "dataVolume" in volume:
            dvs.add(volume["dataVolume"]["name"])
            pvcs.add(volume["dataVolume"]["name"])
        if "persistentVolumeClaim" in volume:
            pvcs.add(volume["persistentVolumeClaim"]["claimName"])
        # the Secret-backed volume kinds of KubeVirt's v1.Volume (staging/src/kubevirt.io/api/core/v1/schema.go)
        refs = [(volume.get("secret") or {}).get("secretName"), ((volume.get("sysprep") or {}).get("secret") or {}).get("name")]
        for key in ("cloudInitNoCloud", "cloudInitConfigDrive"):
            source = volume.get(key) or {}
            refs += [(source.get(ref) or {}).get("name") for ref in ("secretRef", "networkDataSecretRef")]
        secrets.update(name for name in refs if name)
    return dvs, pvcs, secrets


def relevant_events(events: Iterable[Obj], names: Set[Tuple[str, str]]) -> List[Obj]:
    """Events whose involvedObject is one of (kind, name), oldest first."""
    picked = [e for e in events if ((e.get("involvedObject") or {}).get("kind"),
                                    (e.get("involvedObject") or {}).get("name")) in names]
    return sorted(picked, key=lambda e: (e.get("lastTimestamp") or e.get("eventTime") or "", meta(e).get("name") or ""))


def readme(contents: Contents, header: Dict[str, str]) -> str:
    lines = ["# kubectl-dlm report", ""]
    lines += [f"* {key}: {value}" for key, value in header.items()]
    lines += ["", "## In this archive", ""] + [f"* `{path}`" for path in sorted(contents.files)]
    lines += ["", "## Left out", ""] + [f"* {why}" for why in contents.left_out]
    return "\n".join(lines) + "\n"


def archive(contents: Contents, header: Dict[str, str], root: str) -> bytes:
    """A .tar.gz of the files and README.md under `root/`: byte-identical for the same contents
    (sorted, mtime 0, no owner names, gzip without a timestamp)."""
    files = dict(contents.files, **{"README.md": readme(contents, header)})
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            data = files[path].encode()
            info = tarfile.TarInfo(f"{root}/{path}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    import gzip

    return gzip.compress(raw.getvalue(), mtime=0)


def describe_missing(kind: str, namespace: str, name: str, side: str, why: str) -> str:
    return f"{kind} {namespace}/{name} on the {side} cluster: {why}"


def side_dir(side: str) -> str:
    return side


def object_path(side: str, kind: str, name: str) -> str:
    return f"{side_dir(side)}/{kind.lower()}-{name}.yaml"


def secrets_left_out(side: str, namespace: str, names: Iterable[str]) -> List[str]:
    return [f"Secret {namespace}/{name} ({side}): Secrets and their values are never included" for name in sorted(names)]


NO_EVENT_LOG = ("the plugin's own event log: kubectl-dlm keeps none on disk; attach the output of "
                "`kubectl dlm migrate ... -o json` (one event per line) if you have it")


def header(version: str, vm: str, sides: Dict[str, str]) -> Dict[str, Any]:
    out = {"kubectl-dlm version": version, "VM": vm}
    out.update({f"{side} cluster": where for side, where in sides.items()})
    return out


INLINE = ("userData", "userDataBase64", "networkData", "networkDataBase64")  # cloud-init text in the spec itself


def redact_inline(obj: Obj, what: str) -> Tuple[Obj, List[str]]:
    """The object with inline cloud-init data replaced (it often holds passwords or keys), and a
    left-out line for each replacement. VMs keep it in spec.template.spec, VMIs in spec."""
    import copy

    out = copy.deepcopy(obj)
    spec = out.get("spec") or {}
    spec = (spec.get("template") or {}).get("spec") or {} if "template" in spec else spec
    notes = []
    for volume in spec.get("volumes") or []:
        for key in ("cloudInitNoCloud", "cloudInitConfigDrive"):
            source = volume.get(key) or {}
            for field_name in INLINE:
                if field_name in source:
                    size = len(str(source[field_name]))
                    source[field_name] = f"<left out: {size} characters>"
                    notes.append(f"{what}: volume {volume.get('name')} {key}.{field_name} ({size} characters): "
                                 "inline cloud-init data may hold credentials")
    return out, notes
