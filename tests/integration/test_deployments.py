"""The deployment files: the systemd unit, the Kubernetes manifests and the container image.

The unit is checked by systemd's own tools (`systemd-analyze verify`, and `security --offline`
for its exposure score); the manifests by `kubernetes-validate --strict` against a pinned
Kubernetes version, plus the rules of the `restricted` Pod Security Standard; the Dockerfile is
parsed (no Docker daemon runs here) and its build inputs are built into a wheel. Each file is
also checked against the settings it names, so a renamed variable cannot leave them stale.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from financial.configs import load_settings
from financial.configs.settings import Settings
from financial.configs.values import parse_host_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deployments" / "systemd" / "financial-worker.service"
K8S = REPO / "deployments" / "k8s"
DOCKERFILE = REPO / "deployments" / "docker" / "Dockerfile"
FINANCIAL = Path(sys.executable).with_name("financial")

KUBERNETES_VERSION = "1.30.0"
MAX_EXPOSURE = 2.5
# Closing the broker, the database and telemetry after the drain takes a few seconds more.
CLOSE_MARGIN_S = 10
SECRETS_DIR = "/run/secrets"
SECRET_VARIABLES = {"DATABASE_URL", "DB_PASSWORD", "RABBITMQ_URL"}
SETTINGS = set(Settings.model_fields)

# --- systemd -------------------------------------------------------------------------------------


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is missing: run scripts/ensure-test-tools.sh (make test does)")
    return path


def unit_directives(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of every line of a unit file, continuation lines joined."""
    directives, section, pending = [], "", ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        directives.append((section, key.strip(), value.strip()))
    return directives


def directive(key: str) -> list[str]:
    return [v for _, k, v in unit_directives(UNIT.read_text()) if k == key]


def seconds(span: str) -> float:
    """A systemd time span such as `30s`, `5min`, `1min 30s` or `90`, in seconds."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "": 1}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span):
        total += float(number) * units[unit]
    return total


def unit_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for value in directive("Environment"):
        for assignment in value.split():
            name, _, setting = assignment.partition("=")
            env[name] = setting
    return env


@pytest.fixture(scope="module")
def verifiable_unit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unit with ExecStart pointing at this venv's `financial`, which verify needs to exist."""
    text = UNIT.read_text().replace("/opt/financial-worker/bin/financial", str(FINANCIAL))
    path = tmp_path_factory.mktemp("unit") / UNIT.name
    path.write_text(text)
    return path


def test_the_unit_passes_systemd_analyze_verify(verifiable_unit: Path) -> None:
    result = subprocess.run(
        [systemd_analyze(), "verify", str(verifiable_unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify exits 0 on unknown or malformed directives too, only complaining on stderr.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_unit_sandbox_keeps_exposure_low(verifiable_unit: Path) -> None:
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", "--no-pager", str(verifiable_unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Invalid syntax" not in result.stderr and "Unknown key" not in result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match is not None, result.stdout[-2000:]
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_the_unit_speaks_notify_with_a_watchdog_and_drains_before_the_kill() -> None:
    assert directive("Type") == ["notify"]
    assert directive("NotifyAccess") == ["main"]
    assert seconds(directive("WatchdogSec")[0]) >= 10  # the loop beats every 5 s at least
    assert directive("KillMode") == ["mixed"]
    assert directive("KillSignal") == ["SIGTERM"]
    assert directive("Restart") == ["on-failure"]
    assert "78" in directive("RestartPreventExitStatus")[0].split()
    shutdown_s = float(unit_environment().get("WORKER_SHUTDOWN_TIMEOUT_SECONDS", "30"))
    assert seconds(directive("TimeoutStopSec")[0]) >= shutdown_s + CLOSE_MARGIN_S


def test_the_unit_takes_secrets_as_credentials_and_names_only_real_settings() -> None:
    credentials = [value.split(":", 1) for value in directive("LoadCredential")]
    assert {name for name, _ in credentials} >= {"database_url", "rabbitmq_url"}
    assert all(name in SETTINGS and path.startswith("/") for name, path in credentials)
    env = unit_environment()
    assert not SECRET_VARIABLES & set(env), "secrets belong in LoadCredential=, not Environment="
    assert not any("@" in value and "://" in value for value in env.values())
    for name in env:
        assert name.lower() in SETTINGS or name.startswith("PYTHON"), name
    assert seconds(directive("TimeoutStartSec")[0]) >= 60  # the worker waits for its database
    assert unit_environment()["WORKER_HEALTH_ADDR"].startswith("127.0.0.1:")


# --- Kubernetes ----------------------------------------------------------------------------------


def manifests() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in manifests():
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def resource(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in documents() if d["kind"] == kind]
    if name is not None:
        found = [d for d in found if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    return [
        (d["kind"], d["spec"]["template"]["spec"])
        for d in documents()
        if d["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet")
    ]


def test_there_are_manifests_for_each_part() -> None:
    kinds = {d["kind"] for d in documents()}
    assert kinds >= {"Deployment", "ConfigMap", "Secret", "Job", "ServiceAccount"}


@pytest.mark.parametrize("path", manifests(), ids=lambda p: p.name)
def test_every_manifest_validates_strictly(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_strict_validation_rejects_an_unknown_field() -> None:
    deployment = copy.deepcopy(resource("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_three_replicas_probed_on_the_health_server() -> None:
    deployment = resource("Deployment")
    assert deployment["spec"]["replicas"] == 3
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    _, health_port = parse_host_port(resource("ConfigMap")["data"]["WORKER_HEALTH_ADDR"])
    assert ports["health"] == health_port
    probes = {
        name: (container[name]["httpGet"]["path"], container[name]["httpGet"]["port"])
        for name in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    assert probes == {
        "livenessProbe": ("/livez", "health"),
        "readinessProbe": ("/readyz", "health"),
        "startupProbe": ("/livez", "health"),
    }
    host, _ = parse_host_port(resource("ConfigMap")["data"]["WORKER_HEALTH_ADDR"])
    assert host in ("", "0.0.0.0", "::"), "the kubelet probes the pod's IP, not its loopback"


def test_the_grace_period_outlasts_the_drain() -> None:
    shutdown_s = float(resource("ConfigMap")["data"]["WORKER_SHUTDOWN_TIMEOUT_SECONDS"])
    grace_s = resource("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace_s >= shutdown_s + CLOSE_MARGIN_S


RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


@pytest.mark.parametrize(
    ("kind", "pod"), pod_specs(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_pods_meet_the_restricted_pod_security_standard(kind: str, pod: dict[str, Any]) -> None:
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    assert pod.get("automountServiceAccountToken") is False
    pod_context = pod.get("securityContext", {})
    for volume in pod.get("volumes", []):
        types = set(volume) - {"name"}
        assert types <= RESTRICTED_VOLUMES, f"{kind}: volume {volume['name']} is {types}"
    tmp_volumes = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    for container in pod["containers"] + pod.get("initContainers", []):
        context = container.get("securityContext", {})
        where = f"{kind}/{container['name']}"

        def setting(key: str, context: dict[str, Any] = context) -> Any:
            return context.get(key, pod_context.get(key))

        assert setting("runAsNonRoot") is True, where
        assert setting("runAsUser") not in (0, None), where
        assert (setting("seccompProfile") or {}).get("type") == "RuntimeDefault", where
        assert context.get("allowPrivilegeEscalation") is False, where
        assert context.get("privileged") is not True, where
        assert context.get("readOnlyRootFilesystem") is True, where
        assert context["capabilities"]["drop"] == ["ALL"], where
        assert not context["capabilities"].get("add"), where
        assert not any("hostPort" in p for p in container.get("ports", [])), where
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        assert mounts.get("/tmp") in tmp_volumes, f"{where}: /tmp must be an emptyDir"


def test_the_secret_is_mounted_as_files_where_the_settings_read_them() -> None:
    secret = resource("Secret")
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    assert keys >= {"database_url", "rabbitmq_url"}
    assert keys <= SETTINGS
    for kind, pod in pod_specs():
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        mount = mounts[SECRETS_DIR]
        assert mount["readOnly"] is True, kind
        assert volumes[mount["name"]]["secret"]["secretName"] == secret["metadata"]["name"]
        assert not any(env.get("name") in SECRET_VARIABLES for env in container.get("env", [])), (
            f"{kind}: secrets as files, not environment variables"
        )


def test_the_configmap_holds_documented_settings_that_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data: dict[str, str] = resource("ConfigMap")["data"]
    documented = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M)
    )
    assert set(data) <= documented, set(data) - documented
    assert {name.lower() for name in data} <= SETTINGS
    assert not SECRET_VARIABLES & set(data)
    for name in [n for n in os.environ if n.lower() in SETTINGS]:
        monkeypatch.delenv(name)
    for name, value in data.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(env_file=None, secrets_dirs=[])
    assert settings.worker_shutdown_timeout_seconds == float(
        data["WORKER_SHUTDOWN_TIMEOUT_SECONDS"]
    )
    assert settings.health_address == ("", 8080)


def test_the_migration_job_runs_migrate_once_with_the_worker_image() -> None:
    job = resource("Job")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["financial", "migrate"]
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1 and job["spec"]["activeDeadlineSeconds"] > 0
    (worker,) = resource("Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == worker["image"]
    assert container["envFrom"] == worker["envFrom"]


# --- container image -----------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions (KEYWORD, arguments) per stage, continuation lines joined."""
    stages: list[list[tuple[str, str]]] = []
    logical = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args.strip()))
    return stages


def test_the_image_is_multi_stage_and_runs_the_worker_as_pid_1_unprivileged() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    final = dict(stages[-1])  # last instruction of each keyword wins, as in Docker
    assert any(k == "COPY" and args.startswith("--from=") for k, args in stages[-1])
    # Exec form: `financial` is PID 1 and gets SIGTERM itself, not through /bin/sh -c.
    assert json.loads(final["ENTRYPOINT"]) == ["financial", "worker"]
    assert "CMD" not in final or json.loads(final["CMD"])
    assert final["STOPSIGNAL"] == "SIGTERM"
    user = final["USER"].partition(":")[0]
    assert user.isdigit() and int(user) != 0, "a numeric non-root user, for runAsNonRoot"
    for _, pod in pod_specs():
        assert pod["securityContext"]["runAsUser"] == int(user)
    env = dict(re.findall(r"(\w+)=(\S+)", final["ENV"]))
    _, port = parse_host_port(env["WORKER_HEALTH_ADDR"])
    assert final["EXPOSE"] == str(port)


def dockerignore_excludes(path: str) -> bool:
    excluded = False
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").removeprefix("**/")
        parts = path.split("/")
        hit = any(
            fnmatch.fnmatch("/".join(parts[i : j + 1]), pattern)
            for i in range(len(parts))
            for j in range(i, len(parts))
        )
        if hit:
            excluded = not negate
    return excluded


def copied_sources() -> list[str]:
    sources = []
    for keyword, args in dockerfile_stages()[0]:
        if keyword == "COPY" and not args.startswith("--from="):
            sources.extend(args.split()[:-1])
    return sources


def test_the_build_context_keeps_secrets_out_and_the_sources_in() -> None:
    for private in (".env", ".git", ".venv", ".data", "pkg/__pycache__/x.pyc"):
        assert dockerignore_excludes(private), private
    assert not dockerignore_excludes(".env.example")
    for source in copied_sources():
        assert (REPO / source).exists(), source
        assert not dockerignore_excludes(source.rstrip("/")), source


def test_the_image_sources_build_a_wheel_with_every_module(tmp_path: Path) -> None:
    context = tmp_path / "context"
    for source in copied_sources():
        origin = REPO / source
        if origin.is_dir():
            shutil.copytree(origin, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            context.mkdir(exist_ok=True)
            shutil.copy2(origin, context / source)
    expected = {
        "financial/" + str(path.relative_to(context))
        for path in context.rglob("*")
        if path.suffix in (".py", ".sql") and path.parent != context
    }
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = tmp_path.glob("financial-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert expected - names == set(), "modules missing from the package list in pyproject.toml"
