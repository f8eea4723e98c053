"""Read exported objects (`kubectl get vm,vmi,dv,pvc,secret,cm -o yaml`, or plain multi-document YAML)."""

from __future__ import annotations

import json
from typing import IO, Any, Iterator, List

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
    return _source(_documents(stream.read(), where), where, default_namespace)


def _documents(text: str, where: str) -> List[Any]:
    """JSON (`kubectl get -o json`) through the json module, which is much faster than the
    pure-Python YAML parser on the same text; anything else, or JSON it rejects (JSON is YAML),
    through the YAML parser."""
    from ruamel.yaml.error import YAMLError

    if text.lstrip()[:1] in ("{", "["):
        try:
            return [json.loads(text)]
        except ValueError:
            pass
    try:
        return list(_yaml().load_all(text))
    except YAMLError as exc:
        raise UsageError(f"{where}: not valid YAML: {str(exc).splitlines()[0]}") from None


def _source(docs: List[Any], where: str, default_namespace: str) -> Source:
    source = Source(live=False)
    for doc in docs:
        for obj in _objects(doc, where):
            obj.setdefault("metadata", {}).setdefault("namespace", default_namespace)
            source.add(obj)
    if not source.objects:
        raise UsageError(f"{where}: no objects found")
    return source


def read_text(text: str, where: str, default_namespace: str) -> Source:
    return _source(_documents(text, where), where, default_namespace)
