"""The locks in requirements/ against pyproject.toml, the Makefile and the container image.

A dependency added to pyproject.toml without `make lock` fails here (its name is in no lock, or
a pin falls outside its new range), before an install could.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
DECLARED = sorted(
    (
        classifier.rsplit(" ", 1)[-1]
        for classifier in PYPROJECT["project"]["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", classifier)
    ),
    key=lambda version: tuple(map(int, version.split("."))),
)
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+) \\$")


def pins(lock: Path) -> dict[str, tuple[str, list[str]]]:
    """Each pinned name (canonical) with its version and hashes."""
    found: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    for line in lock.read_text().splitlines():
        if match := PIN.match(line):
            current = canonicalize_name(match[1])
            found[current] = (match[2], [])
        elif line.strip().startswith("--hash=sha256:") and current is not None:
            found[current][1].append(line.strip().removeprefix("--hash=sha256:").rstrip(" \\"))
        elif not line.startswith(" "):
            current = None
    return found


def environment(version: str) -> dict[str, str]:
    """Marker values of CPython `version` on Linux, the platform the locks are resolved for."""
    env = {key: str(value) for key, value in default_environment().items()}
    env.update(python_version=version, python_full_version=f"{version}.0", sys_platform="linux")
    env.update(platform_system="Linux", platform_python_implementation="CPython")
    return env


def requirements(version: str, extras: list[str]) -> list[Requirement]:
    """What pyproject.toml asks for on `version`, with these extras, markers applied."""
    texts = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        texts += PYPROJECT["project"]["optional-dependencies"][extra]
    texts += PYPROJECT["build-system"]["requires"]
    chosen = [Requirement(text) for text in texts]
    return [r for r in chosen if r.marker is None or r.marker.evaluate(environment(version))]


def test_the_declared_versions_are_the_makefiles_and_start_at_requires_python() -> None:
    assert DECLARED == ["3.11", "3.12", "3.13"]
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^PYTHONS := (.+)$", makefile, re.M)[1].split() == DECLARED  # type: ignore[index]
    assert PYPROJECT["project"]["requires-python"] == f">={DECLARED[0]}"
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py" + DECLARED[0].replace(".", "")
    assert PYPROJECT["tool"]["mypy"]["python_version"] == DECLARED[0]


@pytest.mark.parametrize("version", DECLARED)
@pytest.mark.parametrize(
    ("kind", "extras"), [("dev", ["dev", "embedded", "bench"]), ("runtime", [])]
)
def test_each_lock_pins_what_pyproject_asks_for_within_its_ranges(
    version: str, kind: str, extras: list[str]
) -> None:
    locked = pins(REPO / "requirements" / f"{kind}-py{version}.txt")
    for requirement in requirements(version, extras):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not in {kind}-py{version}.txt: run make lock"
        pinned, hashes = locked[name]
        assert requirement.specifier.contains(pinned, prereleases=True), (
            f"{name}=={pinned} is outside {requirement}: run make lock"
        )
        assert hashes, name
    assert all(hashes for _, hashes in locked.values())


@pytest.mark.parametrize("version", DECLARED)
def test_the_runtime_lock_is_the_dev_locks_versions(version: str) -> None:
    # The image installs the runtime lock; the suites run on the dev lock of the same version.
    runtime = pins(REPO / "requirements" / f"runtime-py{version}.txt")
    dev = pins(REPO / "requirements" / f"dev-py{version}.txt")
    assert {name: v for name, (v, _) in runtime.items()} == {name: dev[name][0] for name in runtime}


def test_the_embedded_postgresql_is_locked_where_it_has_a_build_only() -> None:
    for version in DECLARED:
        locked = pins(REPO / "requirements" / f"dev-py{version}.txt")
        assert ("pgserver" in locked) == (version in ("3.11", "3.12")), version


def test_uvloop_is_in_every_lock() -> None:
    for path in (REPO / "requirements").glob("*-py3.*.txt"):
        assert "uvloop" in pins(path), path.name


def test_the_image_runs_the_newest_declared_python_on_its_runtime_lock() -> None:
    dockerfile = (REPO / "deployments" / "docker" / "Dockerfile").read_text()
    version = re.search(r"^ARG PYTHON_VERSION=(\S+)$", dockerfile, re.M)
    assert version is not None
    assert version[1] == DECLARED[-1]
    assert "pip install --require-hashes" in dockerfile
    assert "-r requirements/runtime-py${PYTHON_VERSION}.txt" in dockerfile
    assert (REPO / "requirements" / f"runtime-py{version[1]}.txt").is_file()
