"""bundle.py and `render --output-dir`: the tree, its index and summary, and never half a tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from kubectl_dlm import bundle, errors
from kubectl_dlm.errors import Conflict, UsageError
from kubectl_dlm.model import Item, Plan, Settings
from kubectl_dlm.render import Document
from tests.conftest import FIXTURES, TARGET_ARGS, run_cli

yaml = YAML(typ="safe", pure=True)


def render_dir(out: Path, *extra, fixture="datavolume-templates"):
    return run_cli(["render", "-f", FIXTURES / f"{fixture}.yaml", *TARGET_ARGS, "--output-dir", out, *extra])


def tree_of(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_tree_layout(tmp_path):
    out = tmp_path / "bundle"
    result = render_dir(out)
    assert result.code == 0 and result.stdout == ""
    assert sorted(tree_of(out)) == [
        "1-prepare-target/datavolume-pg-data.yaml",
        "1-prepare-target/datavolume-pg-root.yaml",
        "1-prepare-target/kustomization.yaml",
        "1-prepare-target/virtualmachine-pg.yaml",
        "2-receive-target/kustomization.yaml",
        "2-receive-target/virtualmachineinstancemigration-pg-receive-f61b4643.yaml",
        "3-send-source/kustomization.yaml",
        "3-send-source/virtualmachineinstancemigration-pg-send-f61b4643.yaml",
        "README.md",
        "after-move/kustomization.yaml",
        "after-move/virtualmachine-pg.yaml",
        "dlm-bundle.yaml",
    ]
    # One object per file, and the files are exactly what stdout would carry (minus the comment headers).
    stream = run_cli(["render", "-f", FIXTURES / "datavolume-templates.yaml", *TARGET_ARGS]).stdout
    objects = [yaml.load(t) for p, t in tree_of(out).items() if p.count("/") and not p.endswith("kustomization.yaml")
               and not p.startswith("after-move/")]  # the after-state is not part of the move
    assert sorted(objects, key=str) == sorted([d for d in yaml.load_all(stream) if d], key=str)


def test_a_kustomization_per_phase_lists_its_files_in_apply_order(tmp_path):
    out = tmp_path / "bundle"
    assert render_dir(out).code == 0
    for phase_dir in ("1-prepare-target", "2-receive-target", "3-send-source"):
        k = yaml.load((out / phase_dir / "kustomization.yaml").read_text())
        assert k["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and k["kind"] == "Kustomization"
        assert sorted(k["resources"]) == sorted(p.name for p in (out / phase_dir).iterdir() if p.name != "kustomization.yaml")
    prepare = yaml.load((out / "1-prepare-target" / "kustomization.yaml").read_text())["resources"]
    assert prepare == ["datavolume-pg-root.yaml", "datavolume-pg-data.yaml", "virtualmachine-pg.yaml"]


def test_index(tmp_path):
    out = tmp_path / "bundle"
    assert render_dir(out).code == 0
    index = yaml.load((out / "dlm-bundle.yaml").read_text())
    assert (index["apiVersion"], index["kind"]) == ("dlm.kubevirt-tools.io/v1alpha1", "Bundle")
    assert index["source"] == {"cluster": "", "namespace": "prod"}
    assert index["target"] == {"cluster": "", "namespace": "prod-b"}
    # rendered with --connect-url: apply keeps it instead of the live address
    assert index["vms"] == [{"name": "pg", "migrationID": "f61b46438eb3e3a9", "connectURL": "192.0.2.20:9185",
                             "connectURLFrom": "flag"}]
    assert [(p["phase"], p["side"], p["path"]) for p in index["phases"]] == [
        ("prepare", "target", "1-prepare-target"), ("receive", "target", "2-receive-target"), ("send", "source", "3-send-source")]
    listed = [f for p in index["phases"] for f in p["files"]] + index["afterMove"]["files"]
    assert index["afterMove"] == {"path": "after-move", "files": ["after-move/virtualmachine-pg.yaml"]}
    assert all((out / f).is_file() for f in listed)
    assert len(listed) == len([p for p in tree_of(out) if "/" in p and not p.endswith("kustomization.yaml")])
    assert index["secrets"] == "reference" and index["secretsToCopy"] == []


def test_summary(tmp_path):
    out = tmp_path / "bundle"
    assert render_dir(out, fixture="maps").code == 0
    readme = (out / "README.md").read_text()
    assert "From namespace prod to namespace prod-b." in readme
    assert "| router | " in readme
    for line in ("kubectl apply -k 1-prepare-target", "kubectl apply -k 2-receive-target", "kubectl apply -k 3-send-source",
                 "kubectl dlm apply -f ."):
        assert f"    {line}\n" in readme
    for rel in tree_of(out):
        if "/" in rel and not rel.endswith("kustomization.yaml"):
            obj = yaml.load((out / rel).read_text())
            assert f"| {obj['kind']} | {obj['metadata']['namespace']}/{obj['metadata']['name']} |" in readme
    assert "- router: NetworkAttachmentDefinition prod-b/lan-net (network lan) on the target" in readme


def test_summary_without_connect_url_says_so(tmp_path):
    out = tmp_path / "bundle"
    result = run_cli(["render", "-f", FIXTURES / "pvc-volumes.yaml", "--to-namespace", "prod-b", "--output-dir", out])
    assert result.code == 0
    assert not (out / "3-send-source").exists()
    assert "(unknown: see below)" in (out / "README.md").read_text()


def test_existing_directory_is_not_overwritten(tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "mine.txt").write_text("the user's work")
    result = render_dir(out)
    assert result.code == errors.CONFLICT == 5
    assert result.stderr_lines == [f"error: {out} already exists",
                                   "  hint: pass --overwrite to replace it, or choose another --output-dir"]
    assert tree_of(out) == {"mine.txt": "the user's work"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_existing_file_is_not_overwritten(tmp_path):
    out = tmp_path / "bundle"
    out.write_text("a file")
    assert render_dir(out, "--overwrite").code == errors.CONFLICT
    assert out.read_text() == "a file"


def test_overwrite_replaces_the_whole_directory(tmp_path):
    out = tmp_path / "bundle"
    assert render_dir(out, fixture="pvc-volumes").code == 0
    (out / "stale.yaml").write_text("x")
    assert render_dir(out, "--overwrite").code == 0
    fresh = tmp_path / "fresh"
    assert render_dir(fresh).code == 0
    assert tree_of(out) == tree_of(fresh)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "fresh"]  # no staging or backup left


class Boom(Exception):
    pass


@pytest.fixture
def fail_on_third_write(monkeypatch):
    real = Path.write_text
    calls = []

    def write_text(self, *args, **kwargs):
        calls.append(self)
        if len(calls) == 3:
            raise Boom("disk full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    return calls


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_an_error_mid_write_leaves_no_partial_tree(tmp_path, monkeypatch, error):
    real, calls = Path.write_text, []

    def write_text(self, *args, **kwargs):
        calls.append(self)
        if len(calls) == 3:
            raise error()
        return real(self, *args, **kwargs)

    settings = Settings(source_namespace="a", target_namespace="b")
    docs = [Document(Item("target", "prepare", "ConfigMap", "b", f"cm{i}", "configmap.yaml.j2", {}, "vm"),
                     f"kind: ConfigMap\nmetadata: {{name: cm{i}}}\n") for i in range(5)]
    files = bundle.tree(Plan(settings), docs)
    monkeypatch.setattr(Path, "write_text", write_text)
    out = tmp_path / "bundle"
    with pytest.raises(error):
        bundle.write_tree(files, out, overwrite=False)
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []  # neither the tree nor its staging directory


def test_an_error_mid_overwrite_keeps_the_old_tree(tmp_path, fail_on_third_write):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "old.yaml").write_text("old")  # first write
    fail_on_third_write.clear()
    with pytest.raises(Boom):
        bundle.write_tree([(f"d/f{i}.yaml", "x") for i in range(5)], out, overwrite=True)
    assert tree_of(out) == {"old.yaml": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_cli_error_mid_write(tmp_path, fail_on_third_write):
    """Through the CLI, an unexpected error mid-write leaves no tree and no staging directory."""
    out = tmp_path / "bundle"
    with pytest.raises(Boom):  # cli.run lets unexpected errors through (main() shows the traceback)
        render_dir(out)
    assert list(tmp_path.iterdir()) == []


def test_two_objects_with_one_file_name():
    settings = Settings(source_namespace="a", target_namespace="b")
    item = Item("target", "prepare", "Secret", "b", "same", "secret.yaml.j2", {}, "vm")
    with pytest.raises(UsageError):
        bundle.tree(Plan(settings), [Document(item, "kind: Secret\n"), Document(item, "kind: Secret\n")])


def test_write_tree_refuses_existing_directory_directly(tmp_path):
    (tmp_path / "b").mkdir()
    with pytest.raises(Conflict):
        bundle.write_tree([("x.yaml", "x")], tmp_path / "b", overwrite=False)


def test_output_dir_in_a_new_parent(tmp_path):
    out = tmp_path / "migrations" / "wave-1" / "pg"
    assert render_dir(out).code == 0
    assert (out / "dlm-bundle.yaml").is_file()
    assert oct(os.stat(out).st_mode & 0o777) == oct(0o755)


def test_secrets_omit_lists_them_for_the_user_but_apply_will_not_copy_them(tmp_path):
    out = tmp_path / "bundle"
    assert render_dir(out, "--secrets", "omit", fixture="cloudinit-nocloud").code == 0
    index = yaml.load((out / "dlm-bundle.yaml").read_text())
    assert index["secrets"] == "omit" and index["secretsToCopy"] == []
    summary = (out / "README.md").read_text()
    assert "not copied by this bundle: --secrets omit" in summary
    assert not [p for p in tree_of(out) if "/secret-" in p]


def test_secrets_reference_lists_them_for_apply_to_copy(tmp_path):
    out = tmp_path / "bundle"
    assert render_dir(out, fixture="cloudinit-nocloud").code == 0
    index = yaml.load((out / "dlm-bundle.yaml").read_text())
    assert index["secrets"] == "reference"
    assert sorted(r["name"] for r in index["secretsToCopy"]) == ["ci-nocloud-network", "ci-nocloud-userdata"]
    assert not [p for p in tree_of(out) if "/secret-" in p]


def test_after_move_is_the_vm_as_declared_once_moved(tmp_path):
    out = tmp_path / "bundle"
    assert render_dir(out).code == 0
    after = yaml.load((out / "after-move" / "virtualmachine-pg.yaml").read_text())
    receiving = yaml.load((out / "1-prepare-target" / "virtualmachine-pg.yaml").read_text())
    restore = receiving["metadata"]["annotations"]["kubevirt.io/restore-run-strategy"]
    assert receiving["spec"]["runStrategy"] == "WaitAsReceiver"
    assert after["spec"]["runStrategy"] == restore  # what KubeVirt restores (vm.go:1149-1166)
    assert {k: v for k, v in after["spec"].items() if k != "runStrategy"} == \
        {k: v for k, v in receiving["spec"].items() if k != "runStrategy"}
    assert after["metadata"]["namespace"] == "prod-b"
    every = {**after["metadata"]["labels"], **after["metadata"]["annotations"]}
    assert not [k for k in every if k.startswith(("dlm.kubevirt-tools.io/", "kubevirt.io/restore", "argocd.", "kustomize."))]
    assert "app.kubernetes.io/managed-by" not in after["metadata"]["labels"]
    # the one-shot objects carry what Argo CD and Flux document; the after-state none of it
    for rel in ("1-prepare-target/virtualmachine-pg.yaml", "1-prepare-target/datavolume-pg-root.yaml",
                "2-receive-target/virtualmachineinstancemigration-pg-receive-f61b4643.yaml"):
        notes = yaml.load((out / rel).read_text())["metadata"]["annotations"]
        assert notes["argocd.argoproj.io/sync-options"] == "Prune=false"
        assert notes["argocd.argoproj.io/compare-options"] == "IgnoreExtraneous"
        assert notes["kustomize.toolkit.fluxcd.io/prune"] == "disabled"
        assert notes["kustomize.toolkit.fluxcd.io/reconcile"] == "disabled"
    summary = (out / "README.md").read_text()
    assert "## After the move: hand the VM to Git" in summary
    assert "kubectl annotate -n prod-b vm/pg argocd.argoproj.io/sync-options-" in summary
