"""The repository layout promises of DESIGN section 2."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOTS = {
    "cmd": "financial.cmd",
    "configs": "financial.configs",
    "pkg": "financial.pkg",
    "internal": "financial.internal",
}


def test_pdb_still_imports_from_the_repository_root() -> None:
    # `cmd/` must not shadow the standard library's `cmd`, which pdb imports.
    result = subprocess.run(
        [sys.executable, "-c", "import pdb, cmd; print(cmd.__file__)"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert not result.stdout.strip().startswith(str(REPO))
    assert not (REPO / "cmd" / "__init__.py").exists()


def test_every_package_folder_is_declared_in_pyproject() -> None:
    declared = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {"financial.cmd"}
    for folder, name in ROOTS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder).parts
            found.add(".".join([name, *relative]))
    assert found - declared == set(), "add these to [tool.setuptools] packages"


def test_pkg_never_imports_internal_and_internal_never_imports_cmd() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for folder, forbidden in (("pkg", "financial.internal"), ("internal", "financial.cmd"))
        for path in (REPO / folder).rglob("*.py")
        if forbidden in path.read_text()
    ]
    assert offenders == []


def test_every_setting_of_env_example_is_in_the_readme_table() -> None:
    readme = (REPO / "README.md").read_text()
    variable = re.compile(r"^#?\s*([A-Z][A-Z0-9_]+)=")
    names = [
        match[1]
        for line in (REPO / ".env.example").read_text().splitlines()
        if (match := variable.match(line)) and "__" not in match[1]
    ]
    missing = [name for name in names if f"`{name}`" not in readme]
    assert names
    assert missing == []
