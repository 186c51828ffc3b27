"""Pins agree everywhere: pyproject.toml, environment.yml, constraints.txt and what is installed."""

from __future__ import annotations

import importlib.metadata as metadata
import re
import tomllib

from convcourse.environment import EXPECTED, check_environment

from course import REPO


def _name(requirement: str) -> str:
    """Normalised distribution name without extras: 'psycopg[binary]' -> 'psycopg'."""
    return requirement.split("[")[0].strip().lower().replace("_", "-")


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    pins = project["dependencies"] + extras["hub"] + extras["dev"]
    parsed = {}
    for pin in pins:
        name, _, version = pin.partition("==")
        assert version, f"{pin} is not pinned with =="
        parsed[_name(name)] = version
    return parsed


def test_environment_yml_pins_equal_pyproject():
    yml = (REPO / "environment.yml").read_text()
    yml_pins = {_name(m[0]): m[1] for m in re.findall(r"^\s+- ([A-Za-z0-9_.\[\]-]+)==(\S+)$", yml, re.M)}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    developer_only = {_name(pin.partition("==")[0]) for pin in project["optional-dependencies"]["dev"]}
    runtime = {k: v for k, v in pyproject_pins().items() if k not in developer_only}
    assert {k: yml_pins.get(k) for k in runtime} == runtime
    assert "python=3.11" in yml and "- -e ." in yml


def test_constraints_cover_every_direct_pin_and_installed_versions_match():
    constraints = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            constraints[_name(name)] = version
    for name, version in pyproject_pins().items():
        assert constraints.get(name) == version, name
        assert metadata.version(name).split("+")[0] == version, name


def test_environment_check_reports_ok_here():
    rows = check_environment()
    assert all(ok for _, ok, _ in rows), rows
    assert set(EXPECTED) <= set(pyproject_pins())


def test_nbformat_imports_without_a_grammar_build():
    """Every nbgrader command, self-check and server imports nbformat, hence jsonschema: the pinned jsonschema
    must not pull rfc3987-syntax (a lark grammar built at import, 1.7 s a process)."""
    import subprocess
    import sys

    probe = "import sys, nbformat; print(sorted(m for m in ('rfc3987_syntax', 'lark') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout == "[]\n"
