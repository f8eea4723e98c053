"""Read exported objects (`kubectl get vm,vmi,dv,pvc,secret,cm -o yaml`, or plain multi-document YAML)."""

from __future__ import annotations

import io
from typing import IO, Any, Iterator

from kubectl_dlm.errors import UsageError
from kubectl_dlm.model import Obj, Source


def _yaml():
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True)


def _objects(doc: Any, where: str) -> Iterator[Obj]:
    if doc is None:
        return
    if not isinstance(doc, dict):
        raise UsageError(f"{where}: expected Kubernetes objects, found a {type(doc).__name__}")
    if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
        for item in doc["items"]:
            yield from _objects(item, where)
        return
    if not doc.get("kind") or not (doc.get("metadata") or {}).get("name"):
        raise UsageError(f"{where}: every object needs kind and metadata.name (found kind={doc.get('kind')!r})")
    yield doc


def read(stream: IO[str], where: str, default_namespace: str) -> Source:
    """Parse every object in the stream; objects without a namespace get the default one."""
    from ruamel.yaml.error import YAMLError

    try:
        docs = list(_yaml().load_all(stream))
    except YAMLError as exc:
        raise UsageError(f"{where}: not valid YAML: {str(exc).splitlines()[0]}") from None
    source = Source(live=False)
    for doc in docs:
        for obj in _objects(doc, where):
            obj.setdefault("metadata", {}).setdefault("namespace", default_namespace)
            source.add(obj)
    if not source.objects:
        raise UsageError(f"{where}: no objects found")
    return source


def read_text(text: str, where: str, default_namespace: str) -> Source:
    return read(io.StringIO(text), where, default_namespace)
