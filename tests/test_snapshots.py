"""Snapshot tests: each fixture rendered through the real CLI, one reviewable .yaml file per case.

The snapshot holds the command line, the exit code and stderr as a comment header, then stdout
(the bundle) as it is. Update with `pytest tests/test_snapshots.py --snapshot-update` and read
every changed file in tests/__snapshots__/test_snapshots/ before committing it.

Refusals are not snapshotted: their message and exit code are asserted exactly, and stdout must
be empty (a refused VM must never yield a partial bundle that a pipe would apply).
"""

from __future__ import annotations

import pytest
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from kubectl_dlm import errors
from tests.conftest import FIXTURES, TARGET_ARGS, run_cli


class YAMLSnapshot(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT
    file_extension = "yaml"


@pytest.fixture
def snapshot_yaml(snapshot):
    return snapshot.use_extension(YAMLSnapshot)


def fixture(name: str) -> str:
    return f"tests/fixtures/{name}.yaml"


MAPPING = "tests/fixtures/mapping-block-to-filesystem.yaml"

# case id -> arguments after `render`. Paths are relative to the repository root (the CLI runs there).
CASES = {
    "example": ["--example"],
    "datavolume-templates": ["-f", fixture("datavolume-templates"), *TARGET_ARGS],
    "pvc-volumes": ["-f", fixture("pvc-volumes"), *TARGET_ARGS],
    "hotplug-persisted": ["-f", fixture("hotplug-persisted"), *TARGET_ARGS],
    "hotplug-vmi-only": ["-f", fixture("hotplug-vmi-only"), *TARGET_ARGS],
    "block-and-filesystem": ["-f", fixture("block-and-filesystem"), *TARGET_ARGS],
    "block-to-filesystem-mapping-file": ["-f", fixture("block-and-filesystem"), *TARGET_ARGS, "--mapping-file", MAPPING],
    "storage-class-map": ["-f", fixture("maps"), *TARGET_ARGS, "--storage-class-map", "gold=platinum",
                          "--storage-class-map", "silver=bronze"],
    "network-map": ["-f", fixture("maps"), *TARGET_ARGS, "--network-map", "lan-net=prod-b/lan-net-b",
                    "--network-map", "infra/storage-net=infra-b/storage"],
    "claim-map": ["-f", fixture("maps"), *TARGET_ARGS, "--claim-map", "router-state=router-state-b"],
    "cloudinit-nocloud": ["-f", fixture("cloudinit-nocloud"), *TARGET_ARGS],
    "cloudinit-configdrive": ["-f", fixture("cloudinit-configdrive"), *TARGET_ARGS],
    "access-credentials": ["-f", fixture("access-credentials"), *TARGET_ARGS],
    "sysprep-secret": ["-f", fixture("sysprep-secret"), *TARGET_ARGS],
    "sysprep-configmap": ["-f", fixture("sysprep-configmap"), *TARGET_ARGS],
    "configmap-secret-volumes": ["-f", fixture("configmap-secret-volumes"), *TARGET_ARGS],
    "containerdisk-pull-secret": ["-f", fixture("containerdisk-pull-secret"), *TARGET_ARGS],
    "secrets-reference": ["-f", fixture("cloudinit-nocloud"), *TARGET_ARGS, "--secrets", "reference"],
    "instancetype-namespaced": ["-f", fixture("instancetype-namespaced"), *TARGET_ARGS],
    "instancetype-cluster": ["-f", fixture("instancetype-cluster"), *TARGET_ARGS],
    "legacy-running-true": ["-f", fixture("legacy-running-true"), *TARGET_ARGS],
    "legacy-running-false": ["-f", fixture("legacy-running-false"), *TARGET_ARGS],
    "persistent-tpm-efi": ["-f", fixture("persistent-tpm-efi"), *TARGET_ARGS],
    "disks-not-live-migratable": ["-f", fixture("disks-not-live-migratable"), *TARGET_ARGS],
    "no-connect-url": ["-f", fixture("pvc-volumes"), "--to-namespace", "prod-b"],
    "phase-receive": ["-f", fixture("pvc-volumes"), *TARGET_ARGS, "--phase", "receive"],
    "side-source": ["-f", fixture("pvc-volumes"), *TARGET_ARGS, "--side", "source"],
    "tuning": ["-f", fixture("pvc-volumes"), *TARGET_ARGS, "--bandwidth", "64Mi", "--allow-post-copy",
               "--no-allow-auto-converge", "--completion-timeout-per-gib", "300", "--max-downtime", "2s"],
}


def transcript(args, result) -> str:
    header = [f"# kubectl dlm render {' '.join(args)}", f"# exit code: {result.code}", "# stderr:"]
    header += [f"#   {line}" for line in result.stderr_lines] or ["#   (empty)"]
    return "\n".join(header) + "\n" + result.stdout


@pytest.mark.parametrize("case", list(CASES))
def test_render(case, snapshot_yaml):
    args = CASES[case]
    result = run_cli(["render", *args], cwd=FIXTURES.parent.parent)
    assert result.code == errors.OK, result.stderr
    assert result.stdout.startswith("---\n# phase ")
    assert transcript(args, result) == snapshot_yaml


def test_output_dir_tree(tmp_path, snapshot_yaml):
    """The --output-dir tree of one fixture, every file in path order, as a YAML map path -> content."""
    from ruamel.yaml import YAML
    from ruamel.yaml.scalarstring import LiteralScalarString
    import io

    out = tmp_path / "bundle"
    result = run_cli(["render", "-f", FIXTURES / "cloudinit-nocloud.yaml", *TARGET_ARGS, "--output-dir", out])
    assert result.code == errors.OK, result.stderr
    assert result.stdout == ""
    files = {str(p.relative_to(out)): LiteralScalarString(p.read_text()) for p in sorted(out.rglob("*")) if p.is_file()}
    yaml = YAML()
    yaml.width = 4096
    text = io.StringIO()
    yaml.dump(files, text)
    stderr = "".join(f"#   {line.replace(str(out), 'OUT')}\n" for line in result.stderr_lines)
    assert f"# kubectl dlm render -f cloudinit-nocloud.yaml --output-dir OUT\n# stderr:\n{stderr}{text.getvalue()}" == snapshot_yaml


HINT = "  hint: see `kubectl dlm check` and the README's troubleshooting section"

# fixture -> the exact first line of stderr (the second is HINT).
REFUSALS = {
    "refuse-not-running":
        "error: cannot migrate VirtualMachine prod/sleeper: its VirtualMachineInstance is Scheduling, not Running",
    "refuse-not-live-migratable":
        "error: cannot migrate VirtualMachine prod/bridged: it is not live-migratable (InterfaceNotLiveMigratable: "
        "cannot migrate VMI which does not use masquerade, bridge with kubevirt.io/allow-pod-bridge-network-live-migration "
        "VM annotation or a migratable plugin to connect to the pod network)",
    "refuse-storage-not-live-migratable":
        "error: cannot migrate VirtualMachine prod/pinned-disk: its storage is not live-migratable (NotMigratable: "
        "cannot migrate VMI: PVC pinned-disk-data uses a storage class that does not support volume migration)",
    "refuse-shareable-disk":
        "error: cannot migrate VirtualMachine prod/clustered: disk quorum is shareable; DLM cannot keep several writers consistent",
    "refuse-virtiofs":
        "error: cannot migrate VirtualMachine prod/shared-fs: filesystem share uses virtiofs, which cannot be live migrated",
    "refuse-lun":
        "error: cannot migrate VirtualMachine prod/san: disk lun0 is a LUN; the target cannot be guaranteed to be a LUN",
    "refuse-hostdisk":
        "error: cannot migrate VirtualMachine prod/hosted: volume host is a hostDisk (a file on the source node); DLM cannot copy it",
    "refuse-foreign-migration":
        "error: cannot migrate VirtualMachine prod/busy: migration kubevirt-evacuation-7xk2c is already Scheduling for it; "
        "wait for it to finish or delete it",
}


@pytest.mark.parametrize("name", list(REFUSALS))
@pytest.mark.parametrize("output", ["stdout", "output-dir"])
def test_refusal(name, output, tmp_path):
    extra = ["--output-dir", tmp_path / "bundle"] if output == "output-dir" else []
    result = run_cli(["render", "-f", FIXTURES / f"{name}.yaml", *TARGET_ARGS, *extra])
    assert result.code == errors.REFUSED == 3
    assert result.stdout == ""
    assert result.stderr_lines == [REFUSALS[name], HINT]
    assert not (tmp_path / "bundle").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no staging directory left behind either


def test_refusal_lists_every_reason(tmp_path):
    """A VM with several problems gets all of them in one error, not one per attempt."""
    text = (FIXTURES / "refuse-lun.yaml").read_text()
    text = text.replace("            - lun:\n", "            - shareable: true\n              lun:\n")
    text = text.replace("    phase: Running", "    phase: Scheduling")
    path = tmp_path / "two-problems.yaml"
    path.write_text(text)
    result = run_cli(["render", "-f", path, *TARGET_ARGS])
    assert result.code == errors.REFUSED
    assert result.stdout == ""
    assert result.stderr_lines[0] == (
        "error: cannot migrate VirtualMachine prod/san: its VirtualMachineInstance is Scheduling, not Running; "
        "disk lun0 is shareable; DLM cannot keep several writers consistent; "
        "disk lun0 is a LUN; the target cannot be guaranteed to be a LUN")


def test_every_fixture_has_a_case():
    """A new fixture without a snapshot or refusal case is a rule nobody checks."""
    used = {a.split("/")[-1][:-5] for args in CASES.values() for a in args if a.startswith("tests/fixtures/")}
    used |= set(REFUSALS) | {"cloudinit-nocloud"}
    present = {p.stem for p in FIXTURES.glob("*.yaml")}
    assert present - used == set()
