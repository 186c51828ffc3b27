"""Real Unix accounts for tests that run the course as separate users (the private exchange, the hub's learners):
created with useradd, removed afterwards; only as root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Python source for scripts a test runs as another user: ``attempt(action)`` is "allowed", or the name of the
#: OSError that stopped it.
ATTEMPT = """
def attempt(action):
    try:
        action()
        return "allowed"
    except OSError as error:
        return type(error).__name__
"""


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


def why_not_root() -> str | None:
    """Why accounts cannot be made here, or None as root."""
    return None if os.geteuid() == 0 else "needs root: creates and removes Unix accounts (useradd/userdel)"


def course_environment() -> dict[str, str]:
    """A minimal environment in which another user's Python imports this environment's packages and the course
    (``.pth`` files, such as the editable install's, are not read from PYTHONPATH, hence the repository)."""
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], str(REPO)])
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.pathsep.join(paths),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
    }


def runnable_python(env: dict[str, str], user: str, modules: str = "nbgrader, convcourse.exchange") -> str | None:
    """This interpreter if ``user`` may run it, else a system one of the same version that imports ``modules``
    with ``env`` (this machine's interpreter lives under root's 0700 home); None if there is none."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    probe = f"import sys, {modules}; assert sys.version_info[:2] == {sys.version_info[:2]}"
    for python in dict.fromkeys([sys.executable, shutil.which(f"python{version}"), f"/usr/bin/python{version}"]):
        if python and os.path.exists(python):
            try:
                result = subprocess.run([python, "-c", probe], env=env, user=user, cwd="/", capture_output=True)
            except PermissionError:  # the interpreter, or a folder above it, is closed to the user
                continue
            if result.returncode == 0:
                return python
    return None


@contextmanager
def unix_accounts(people: dict[str, list[str]], groups: list[str] = ()) -> Iterator[None]:
    """Groups ``groups`` and accounts ``name -> supplementary groups`` (each with its own group and a private
    home, as the README asks: HOME_MODE 0700), removed on exit with their homes. Leftovers of the same names
    from an interrupted run are removed first."""
    made_users: list[str] = []
    made_groups: list[str] = []
    try:
        for name in people:
            subprocess.run(["userdel", "--remove", name], capture_output=True)
        for group in groups:
            subprocess.run(["groupdel", group], capture_output=True)
            _sh("groupadd", group)
            made_groups.append(group)
        for name, extra in people.items():
            _sh(
                "useradd",
                "--create-home",
                "--user-group",
                "--shell",
                "/bin/sh",
                *(["--groups", ",".join(extra)] * bool(extra)),
                name,
            )
            made_users.append(name)
            os.chmod(Path("/home") / name, 0o700)
        yield
    finally:
        for name in made_users:
            subprocess.run(["userdel", "--remove", name], capture_output=True)
        for group in made_groups:
            subprocess.run(["groupdel", group], capture_output=True)
