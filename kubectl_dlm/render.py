"""Plan -> YAML documents, through the Jinja templates in templates/.

Templates put nested values in through the `json` filter (a placeholder, see `_Values`); the
template's YAML skeleton is parsed, the values put back, and the object written by `emit.dump`, so
the output is deterministic whatever the template's whitespace: 2-space indent, nested keys
sorted, multi-line strings as literal blocks, no timestamps.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional

from kubectl_dlm import emit, skeleton
from kubectl_dlm.errors import TemplateError
from kubectl_dlm.model import Item, Plan


@dataclass(frozen=True)
class Document:
    item: Item
    text: str  # one YAML document, no leading '---'
    # The object the text was written from (what parsing the text gives back: tests/test_render_rules.py),
    # for callers that apply it: parsing our own output again cost ~20 ms per object in the
    # pure-Python YAML parser. Fresh containers, shared with nothing else; None when not rendered here.
    data: Any = None


def builtin_template_dir() -> Path:
    """templates/ as installed (kubectl_dlm/templates), in a source checkout, or in a frozen build."""
    here = Path(__file__).resolve().parent
    candidates = [here / "templates", here.parent / "templates"]
    if hasattr(sys, "_MEIPASS"):
        candidates.insert(0, Path(sys._MEIPASS) / "kubectl_dlm" / "templates")
    for candidate in candidates:
        if (candidate / "virtualmachine.yaml.j2").is_file():
            return candidate
    raise TemplateError("the built-in templates are missing from this installation", "reinstall kubectl-dlm")


class _Values:
    """The `json` filter's side table.

    A template writes `{{ spec | json }}` where a nested value goes. The filter leaves a short
    placeholder in the text and keeps the value here; after the template's YAML skeleton is parsed,
    the placeholders are swapped for the values, with their keys sorted. Parsing only the skeleton
    keeps the pure-Python YAML parser off large specs, which is where render time went.
    """

    MARK = "__dlm_value_"

    def __init__(self) -> None:
        self.values: List[Any] = []

    def put(self, value: Any) -> str:
        self.values.append(value)
        return f'"{self.MARK}{len(self.values) - 1}__"'

    def fill(self, node: Any) -> Any:
        if isinstance(node, dict):
            return {self.fill(k): self.fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self.fill(v) for v in node]
        if isinstance(node, str) and self.MARK in node:
            index = node[len(self.MARK):-2] if node.startswith(self.MARK) and node.endswith("__") else None
            if index is not None and index.isdigit():
                return _canonical(self.values[int(index)])
            # a placeholder inside a longer string: the value's JSON text, as the filter once gave
            return re.sub(re.escape(self.MARK) + r"(\d+)__",
                          lambda m: _scalar_text(self.values[int(m.group(1))]), node)
        return node


def _canonical(value: Any) -> Any:
    """Nested keys sorted: a live object and its `kubectl get -o yaml` export render the same."""
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _scalar_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


class Renderer:
    def __init__(self, template_dir: Optional[Path] = None):
        import jinja2

        self._jinja = jinja2
        search = [str(template_dir)] if template_dir else []
        search.append(str(builtin_template_dir()))
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
        )

    def render_item(self, item: Item) -> Document:
        jinja2 = self._jinja
        values = _Values()
        self.env.filters["json"] = values.put
        try:
            text = self.env.get_template(item.template).render(**item.context)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"template {exc.name} not found", "check --template-dir") from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {item.template} failed for {item.kind} {item.name}: {exc}",
                                "fix the template in --template-dir, or drop the override") from None
        data = _object(text, item.template, values)
        return Document(item, emit.dump(data), data)

    def render(self, plan: Plan, phases=None, sides=None) -> List[Document]:
        kwargs = {}
        if phases is not None:
            kwargs["phases"] = phases
        if sides is not None:
            kwargs["sides"] = sides
        return [self.render_item(item) for item in plan.items(**kwargs)]


def _parse(text: str, origin: str) -> Any:
    """A rendered template's YAML skeleton, parsed once per distinct text.

    Nested values are placeholders, so the skeletons of a batch's VMs are mostly the same text:
    a 500-VM render parses a handful of them instead of 3500. The cached value is never mutated
    (`_Values.fill` builds new containers).
    """
    data = _skeletons.get(text)
    if data is None:
        data = skeleton.read(text)  # the built-in templates' shapes, without the pure-Python parser
        if data is None:
            data = _parse_yaml(text, origin)
        if len(_skeletons) >= 1024:
            _skeletons.clear()
        _skeletons[text] = data
    return data


_skeletons: dict = {}


def _parse_yaml(text: str, origin: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise TemplateError(f"template {origin} did not produce valid YAML: {str(exc).splitlines()[0]}",
                            "fix the template in --template-dir") from None


def normalize(text: str, origin: str, values: Optional[_Values] = None) -> str:
    """Parse a rendered template, put the filtered values back, and write it in the canonical style."""
    return emit.dump(_object(text, origin, values))


def _object(text: str, origin: str, values: Optional[_Values] = None) -> dict:
    data = _parse(text, origin)
    if values is not None:
        data = values.fill(data)
    if not isinstance(data, dict) or not data.get("kind"):
        raise TemplateError(f"template {origin} did not produce a Kubernetes object", "fix the template in --template-dir")
    return data
