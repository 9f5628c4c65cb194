"""deploy/: the systemd unit passes ``systemd-analyze`` (when installed), and
the unit, the Kubernetes manifest and the container recipe name the
command, options, files and ports the code really has."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from archive_files import ROOT

from shoebox_sidecar import cli, config
from shoebox_sidecar.cli import build_parser

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "shoebox-sidecar.service"
SYSTEMD_CONFIG = DEPLOY / "systemd" / "sidecar.toml"
MANIFEST = DEPLOY / "kubernetes" / "app-with-sidecar.yaml"
CONTAINERFILE = DEPLOY / "container" / "Containerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SIDECAR_SCRIPT = "shoebox-sidecar"

needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                           reason="systemd-analyze is not installed")


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def settings(argv: list[str], config_text: str, tmp_path: Path,
             config_path: str) -> Any:
    """The settings the sidecar would run with: ``argv`` parsed by the real
    parser, the config file named there read from ``config_text``."""
    given = build_parser().parse_args(argv)
    assert given.config == config_path
    path = tmp_path / "sidecar.toml"
    path.write_text(config_text)
    return config.resolve(given, {}, str(path))


def test_the_script_the_deployments_run_is_the_sidecars_entry_point() -> None:
    assert PYPROJECT["project"]["scripts"][SIDECAR_SCRIPT] == "shoebox_sidecar.cli:script"


def test_the_unit_runs_the_sidecar_with_its_config_file_and_waits_out_its_shutdown(
        tmp_path: Path) -> None:
    service = unit()["Service"]
    command, *argv = shlex.split(service["ExecStart"])
    assert os.path.basename(command) == SIDECAR_SCRIPT
    run = settings(argv, SYSTEMD_CONFIG.read_text(), tmp_path,
                   "/etc/shoebox-sidecar/sidecar.toml")
    values = run.values
    assert run.origins["watch_dir"].startswith("file ")
    assert values.watch_dir in service["ReadWritePaths"].split()
    assert values.metrics_address == "127.0.0.1" and values.metrics_port == 9464
    # SIGKILL must not come before uploads had --shutdown-timeout to finish.
    timeout_stop = float(service["TimeoutStopSec"])
    assert values.shutdown_timeout + 5 <= timeout_stop <= values.shutdown_timeout + 30
    assert service["KillSignal"] == "SIGTERM"
    assert service["DynamicUser"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["Restart"] == "on-failure"
    # Bad options, a destination that cannot work: a restart fixes neither
    # (issue 18: the README said exit 3 was restarted).
    assert service["RestartPreventExitStatus"].split() == [
        str(cli.EXIT_USAGE), str(cli.EXIT_DESTINATION)]


def test_the_unit_runs_the_sidecar_as_an_unprivileged_user_that_cannot_gain_privileges(
        tmp_path: Path) -> None:
    service = unit()["Service"]
    # A user of its own, never root, in the application's group only.
    assert service["DynamicUser"] == "yes"
    for key in ("User", "Group"):
        assert service.get(key, "") not in ("root", "0")
    groups = service["SupplementaryGroups"].split()
    assert groups and not {"root", "0", "wheel", "sudo", "adm"} & set(groups)
    # No capabilities, none to gain, no set-uid way up.
    assert service["CapabilityBoundingSet"] == ""
    assert "AmbientCapabilities" not in service
    assert service["NoNewPrivileges"] == "yes"
    # Writes only where its options say: the archive directory (and the
    # directories it may move archives into); /tmp is its own.
    assert service["ProtectSystem"] == "strict" and service["ProtectHome"] == "yes"
    assert service["PrivateTmp"] == "yes"
    run = settings(shlex.split(service["ExecStart"])[1:], SYSTEMD_CONFIG.read_text(),
                   tmp_path, "/etc/shoebox-sidecar/sidecar.toml")
    writable = service["ReadWritePaths"].split()
    for directory in (run.values.watch_dir, run.values.quarantine_dir):
        assert directory is None or any(
            directory == path or directory.startswith(path.rstrip("/") + "/")
            for path in writable), directory
    assert run.values.tmp_dir in (None, "/tmp", "/var/tmp")
    # What it creates is never readable by others.
    assert int(service["UMask"], 8) & 0o007 == 0o007


def _verifiable_unit(tmp_path: Path) -> Path:
    """The unit with its ExecStart binary pointing at a script that exists:
    ``systemd-analyze verify`` refuses a command it cannot find, and the
    unit's /opt/shoebox/venv is not installed here."""
    binary = tmp_path / "bin" / SIDECAR_SCRIPT
    binary.parent.mkdir()
    binary.write_text(f"#!/bin/sh\nexec {sys.executable} -m shoebox_sidecar \"$@\"\n")
    binary.chmod(0o755)
    text = UNIT.read_text()
    command = shlex.split(unit()["Service"]["ExecStart"])[0]
    assert text.count(command) == 1
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(command, str(binary)))
    return copy


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    result = subprocess.run(["systemd-analyze", "verify", str(_verifiable_unit(tmp_path))],
                            capture_output=True, text=True, check=False, timeout=60)
    # Unknown keys are only warnings: any output is a finding.
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@needs_systemd_analyze
def test_the_unit_is_hardened_by_systemd_analyze_security(tmp_path: Path) -> None:
    copy = _verifiable_unit(tmp_path)
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(copy)],
                            capture_output=True, text=True, check=False, timeout=60)
    summary = [line for line in (result.stdout + result.stderr).splitlines()
               if "Overall exposure level" in line]
    assert summary, result.stdout + result.stderr
    exposure = float(summary[0].split(":")[-1].split()[0])
    assert exposure <= 2.0, summary[0]  # "OK" is below 4; a default unit scores 9.6


def manifest() -> tuple[dict[str, Any], dict[str, Any]]:
    documents = {document["kind"]: document for document in yaml.safe_load_all(
        MANIFEST.read_text())}
    return documents["ConfigMap"], documents["Deployment"]


def containers() -> dict[str, dict[str, Any]]:
    pod = manifest()[1]["spec"]["template"]["spec"]
    return {container["name"]: container
            for container in [*pod.get("initContainers", []), *pod["containers"]]}


def test_the_kubernetes_sidecar_serves_its_probes_on_the_port_its_config_opens(
        tmp_path: Path) -> None:
    config_map, deployment = manifest()
    pod = deployment["spec"]["template"]["spec"]
    sidecar, app = containers()["shoebox-sidecar"], containers()["app"]
    mounts = {mount["name"]: mount["mountPath"] for mount in sidecar["volumeMounts"]}
    config_path = sidecar["args"][1]
    assert os.path.dirname(config_path) == mounts["sidecar-config"]
    config_volume = next(volume for volume in pod["volumes"]
                         if volume["name"] == "sidecar-config")
    assert config_volume["configMap"]["name"] == config_map["metadata"]["name"]
    run = settings(sidecar["args"], config_map["data"][os.path.basename(config_path)],
                   tmp_path, config_path)
    values = run.values
    # The app writes where the sidecar watches, in a volume both mount.
    assert {mount["mountPath"] for mount in app["volumeMounts"]
            if mount["name"] == "archive"} == {values.watch_dir} == {mounts["archive"]}
    assert {"name": "archive", "emptyDir": {"sizeLimit": "2Gi"}} in pod["volumes"]
    # Probes reach /healthz on the port the sidecar listens on, from outside.
    ports = {port["name"]: port["containerPort"] for port in sidecar["ports"]}
    assert ports["metrics"] == values.metrics_port
    assert values.metrics_address == "0.0.0.0"
    for probe in ("startupProbe", "livenessProbe"):
        assert sidecar[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == values.metrics_port
    assert annotations["prometheus.io/path"] == "/metrics"
    # {host} comes from the environment: a variable the sidecar reads.
    variables = {variable["name"] for variable in sidecar["env"]}
    assert variables <= {option.variable for option in config.OPTIONS}
    # The staging directory is writable though the root file system is not.
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert mounts["sidecar-tmp"] == "/tmp" and values.tmp_dir is None


def _container_user() -> tuple[int, int]:
    """The ``USER uid:gid`` the sidecar's image runs as."""
    users = [line.split(None, 1)[1] for line in CONTAINERFILE.read_text().splitlines()
             if line.startswith("USER ")]
    uid, _, gid = users[-1].strip().partition(":")
    # Numeric, so that runAsNonRoot can check it without a passwd file.
    assert uid.isdigit() and gid.isdigit(), users
    return int(uid), int(gid)


def test_no_container_of_the_pod_runs_as_root() -> None:
    pod = manifest()[1]["spec"]["template"]["spec"]
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        assert isinstance(context[key], int) and context[key] > 0, key
    for container in containers().values():
        own = container.get("securityContext", {})
        assert own.get("runAsNonRoot", context["runAsNonRoot"]) is True, container["name"]
        assert own.get("runAsUser", context["runAsUser"]) > 0, container["name"]
        assert own.get("runAsGroup", context["runAsGroup"]) > 0, container["name"]
        assert own.get("privileged", False) is False, container["name"]


def test_the_sidecar_container_is_its_images_user_with_no_privileges_to_gain() -> None:
    pod = manifest()[1]["spec"]["template"]["spec"]
    sidecar, app = containers()["shoebox-sidecar"], containers()["app"]
    context = sidecar["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == _container_user()
    assert context["runAsNonRoot"] is True
    # Not the application's user: it reaches the archives through the
    # volume's group (fsGroup), which the kubelet gives every container.
    assert context["runAsUser"] != app.get("securityContext", {}).get(
        "runAsUser", pod["securityContext"]["runAsUser"])
    assert context["runAsGroup"] != pod["securityContext"]["fsGroup"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_the_sidecar_is_a_native_sidecar_stopped_after_the_application(
        tmp_path: Path) -> None:
    """Issue 18: the preStop wait (grep -q '[.]events') also waited for
    .damaged files and a crashed writer's .open, 50 s while stale recovery
    needs 60. A native sidecar gets SIGTERM once the application has
    exited, and ships what it closed (tests/test_sidecar_stop_together.py)."""
    config_map, deployment = manifest()
    pod = deployment["spec"]["template"]["spec"]
    assert [container["name"] for container in pod["initContainers"]] == ["shoebox-sidecar"]
    assert [container["name"] for container in pod["containers"]] == ["app"]
    sidecar = containers()["shoebox-sidecar"]
    assert sidecar["restartPolicy"] == "Always"
    assert "lifecycle" not in sidecar  # nothing to wait for: it stops after the app
    run = settings(sidecar["args"], config_map["data"]["sidecar.toml"], tmp_path,
                   sidecar["args"][1])
    # The application's shutdown gets what the sidecar's leaves of the grace
    # period, less a margin before SIGKILL.
    assert pod["terminationGracePeriodSeconds"] >= 30 + run.values.shutdown_timeout + 10


def test_the_container_recipe_installs_the_sidecar_and_runs_it() -> None:
    lines = [line.split(None, 1) for line in CONTAINERFILE.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    instructions: dict[str, list[str]] = {}
    for instruction, argument in lines:
        instructions.setdefault(instruction, []).append(argument)
    assert instructions["ENTRYPOINT"] == [f'["{SIDECAR_SCRIPT}"]']
    for copied in instructions["COPY"]:
        *sources, _target = copied.split()
        assert all((ROOT / source).exists() for source in sources), copied
    install = next(run for run in instructions["RUN"] if "pip install" in run)
    extras = install.split("[", 1)[1].split("]", 1)[0].split(",")
    assert set(extras) <= set(PYPROJECT["project"]["optional-dependencies"])
    assert {"sidecar", "metrics"} <= set(extras)
    assert instructions["EXPOSE"] == [str(containers()["shoebox-sidecar"]["ports"][0][
        "containerPort"])]
    assert instructions["USER"][0].split(":")[0] != "0"
