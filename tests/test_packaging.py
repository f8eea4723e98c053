"""The wheel ships every package: setup.cfg lists packages by hand (templates/ is mapped into
kubectl_dlm.templates), so a new subpackage missing from it would vanish from installs."""

from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_setup_cfg():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "kubectl_dlm").rglob("__init__.py")}
    assert on_disk - listed == set()
    assert "kubectl_dlm.templates" in listed
