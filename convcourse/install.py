"""Install the course's pinned packages into a new virtual environment (what ``make env`` runs).

``python -m convcourse.install VENV_PYTHON SPEC`` installs ``SPEC`` (``--editable '.[dev,hub]'``) with
``constraints.txt`` into the environment of ``VENV_PYTHON``. It uses uv (pinned in ``constraints.txt``,
installed into that environment first), which resolves, unpacks and compiles bytecode in parallel: on a fresh
clone on a 2-core machine ``make env`` took 38 s, against 132 s with pip (2026-12-01). uv does not read pip's
configuration, so the indexes, find-links and certificate bundle that pip is configured with (``pip config
list``: its files and ``PIP_*`` variables) are passed on to it (a configured constraint file is not: as for
pip, the ``--constraint`` given replaces it). Where uv cannot be installed or fails, pip installs the same
pins, as it always did, after saying why.

It runs from the repository before the package is installed, so it imports nothing but the standard library.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

CONSTRAINTS = Path(__file__).resolve().parent.parent / "constraints.txt"
#: pip's setting -> uv's option for each of its values.
UV_OPTION = {
    "index-url": "--default-index",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
}


def parse_pip_config(listed: str) -> dict[str, list[str]]:
    """pip's values for the settings in :data:`UV_OPTION` (and ``cert``) from ``pip config list``'s output:
    ``global.``/``install.`` entries of its files and ``:env:.`` ones from ``PIP_*`` variables, the later
    winning per setting as in pip (variables over files); each value split at whitespace, as pip does."""
    found: dict[str, dict[str, list[str]]] = {}
    for line in listed.splitlines():
        match = re.fullmatch(r"(:env:|global|install)\.([a-z-]+)='(.*)'", line.strip())
        if match and (match[2] in UV_OPTION or match[2] == "cert"):
            found.setdefault(match[2], {})[match[1]] = match[3].split()
    order = ("global", "install", ":env:")
    return {name: next(by[s] for s in reversed(order) if s in by) for name, by in found.items()}


def pip_settings(python: str) -> dict[str, list[str]]:
    """:func:`parse_pip_config` of what ``python -m pip config list`` prints."""
    listed = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True)
    return parse_pip_config(listed.stdout)


def uv_command(python: str, spec: list[str], settings: dict[str, list[str]]) -> list[str]:
    """``uv pip install`` of ``spec`` into ``python``'s environment with pip's settings. As pip does, every
    index is searched for the best version (``unsafe-best-match``; every version is pinned in constraints.txt)."""
    uv = str(Path(python).parent / "uv")
    command = [uv, "pip", "install", "--python", python, "--quiet", "--compile-bytecode"]
    command += ["--index-strategy", "unsafe-best-match", "--constraint", str(CONSTRAINTS)]
    for name, values in settings.items():
        for value in values if name in UV_OPTION else []:
            command += [UV_OPTION[name], value]
    return command + spec


def _uv_pin() -> str:
    for line in CONSTRAINTS.read_text().splitlines():
        if line.startswith("uv=="):
            return line.strip()
    raise SystemExit(f"{CONSTRAINTS} pins no uv version")


def install(python: str, spec: list[str]) -> int:
    pip = [python, "-m", "pip", "install", "--quiet", "--constraint", str(CONSTRAINTS)]
    got_uv = subprocess.run([*pip, _uv_pin()], capture_output=True, text=True)
    if got_uv.returncode == 0:
        settings = pip_settings(python)
        env = dict(os.environ)
        if settings.get("cert") and "SSL_CERT_FILE" not in env:
            env["SSL_CERT_FILE"] = settings["cert"][0]  # the bundle pip trusts (a proxy's own CA, say)
        command = uv_command(python, spec, settings)
        print("+", shlex.join(command), flush=True)
        if subprocess.run(command, env=env).returncode == 0:
            return 0
        print("uv could not install the environment (above); pip installs it instead.", flush=True)
    else:
        print(f"uv could not be installed ({got_uv.stderr.strip()[-300:]}); pip installs the environment.", flush=True)
    command = [*pip, *spec]
    print("+", shlex.join(command), flush=True)
    return subprocess.run(command).returncode


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: python -m convcourse.install VENV_PYTHON PIP_INSTALL_ARGS...", file=sys.stderr)
        return 2
    return install(args[0], args[1:])


if __name__ == "__main__":
    sys.exit(main())
