"""``convcourse formgrader``: JupyterLab on the course root with nbgrader's instructor tools.

nbgrader's formgrader (review autograded notebooks, give manual grades and comments) and its Create
Assignment toolbar live in JupyterLab. Started by hand they trip over two things this module takes care of:

* **PATH.** Plain nbgrader creates a gradebook by running ``alembic`` from PATH, so a JupyterLab of the
  course's environment started without activating it crashes the assignment list (``FileNotFoundError:
  'alembic'``). The server gets this interpreter's ``bin/`` first on PATH, and the course's
  ``nbgrader_config.py`` does the same for a server started any other way (it also looks the gradebook's
  schema version up in-process: :func:`convcourse.grading.stamp_gradebooks_in_process`).
* **The exchange.** nbgrader's default exchange, ``/usr/local/share/nbgrader/exchange``, rarely exists on
  an instructor's machine ("Unwritable directory"). Unless an ``Exchange.root`` is configured (the course's
  ``nbgrader_config.py`` or any Jupyter config directory, e.g. ``/etc/jupyter`` on a hub), the server
  uses ``<course>/exchange`` (git-ignored), through a config directory of its own under
  ``<course>/.convcourse/formgrader/`` that is put on ``JUPYTER_CONFIG_PATH``.

That directory also enables nbgrader's server extensions and lab plugins explicitly, so the instructor
tools show even where learners' JupyterLab (``make lab``) hides them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..grading import ensure_tools_on_path
from .course import CourseRoot

#: nbgrader's JupyterLab plugins and server extensions (all of them: the instructor wants every tool).
LAB_PLUGINS = (
    "@jupyter/nbgrader:formgrader",
    "@jupyter/nbgrader:create-assignment",
    "@jupyter/nbgrader:menu",
    "@jupyter/nbgrader:assignment-list",
    "@jupyter/nbgrader:course-list",
    "@jupyter/nbgrader:validate-assignment",
)
SERVER_EXTENSIONS = (
    "nbgrader.server_extensions.formgrader",
    "nbgrader.server_extensions.assignment_list",
    "nbgrader.server_extensions.course_list",
    "nbgrader.server_extensions.validate_assignment",
)
CONFIG_DIR = "formgrader"  # under the course's .convcourse/
EXCHANGE_DIR = "exchange"  # under the course root


def configured_exchange(course: CourseRoot, config_paths: list[str] | None = None) -> str | None:
    """The ``Exchange.root`` nbgrader would use from configuration (the course root's ``nbgrader_config``
    first, then every Jupyter config directory, highest priority first), or None when none sets it."""
    from jupyter_core.paths import jupyter_config_path
    from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

    paths = [str(course.root)] + list(jupyter_config_path() if config_paths is None else config_paths)
    own = str(course.state_dir / CONFIG_DIR)
    for folder in paths:
        if os.path.abspath(folder) == own:  # the default this module wrote is not a configuration
            continue
        for loader in (PyFileConfigLoader, JSONFileConfigLoader):
            name = "nbgrader_config." + ("py" if loader is PyFileConfigLoader else "json")
            if not os.path.isfile(os.path.join(folder, name)):
                continue
            config = loader(name, path=folder).load_config()
            root = config.Exchange.get("root") if "Exchange" in config else None
            if root:
                return str(root)
    return None


def prepare_config(course: CourseRoot) -> tuple[Path, str]:
    """Write the server's own config directory; return it and the exchange root the server will use."""
    folder = course.state_dir / CONFIG_DIR
    (folder / "labconfig").mkdir(parents=True, exist_ok=True)
    (folder / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {plugin: False for plugin in LAB_PLUGINS}}, indent=1) + "\n"
    )
    (folder / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {name: True for name in SERVER_EXTENSIONS}}}, indent=1) + "\n"
    )
    exchange = configured_exchange(course)
    config_file = folder / "nbgrader_config.py"
    if exchange is None:
        exchange = str(course.root / EXCHANGE_DIR)
        Path(exchange).mkdir(parents=True, exist_ok=True)
        config_file.write_text(
            "# Written by `convcourse formgrader`: no Exchange.root is configured, so the course's own\n"
            "# exchange. Configure c.Exchange.root in autograder/nbgrader_config.py to change it.\n"
            f"c.Exchange.root = {exchange!r}\n"
        )
    elif config_file.exists():
        config_file.unlink()
    return folder, exchange


def server_environment(course: CourseRoot, base: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
    """The environment for the server (PATH with this interpreter's tools first, the config directory on
    ``JUPYTER_CONFIG_PATH``) and the exchange root it will use."""
    env = dict(os.environ if base is None else base)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir] + [p for p in env.get("PATH", "").split(os.pathsep) if p and p != bindir])
    folder, exchange = prepare_config(course)
    paths = [p for p in env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p and p != str(folder)]
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join([str(folder)] + paths)
    return env, exchange


def lab_command(
    course: CourseRoot,
    port: int = 8888,
    ip: str = "127.0.0.1",
    open_browser: bool = True,
    extra: list[str] | None = None,
) -> list[str]:
    """``jupyter lab`` on the course root (run with the course root as working directory: the formgrader
    reads ``nbgrader_config.py`` from there)."""
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        f"--ServerApp.root_dir={course.root}",
        f"--ServerApp.ip={ip}",
        f"--ServerApp.port={port}",
    ]
    if not open_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command + list(extra or [])


def run(
    course: CourseRoot,
    port: int = 8888,
    ip: str = "127.0.0.1",
    open_browser: bool = True,
    extra: list[str] | None = None,
) -> int:
    """Become the server (this process is replaced by JupyterLab, so Ctrl-C and signals reach it and no
    server outlives its command); returns only where exec is unavailable, with the server's exit status."""
    ensure_tools_on_path()
    env, exchange = server_environment(course)
    print(
        f"formgrader: JupyterLab on {course.root}; nbgrader exchange: {exchange}\n"
        f"formgrader: open the Nbgrader menu > Formgrader (or http://{ip}:{port}/formgrader after logging in)",
        flush=True,
    )
    command = lab_command(course, port, ip, open_browser, extra)
    if hasattr(os, "execve"):
        os.chdir(course.root)
        os.execve(command[0], command, env)
    try:
        return subprocess.call(command, cwd=course.root, env=env)
    except KeyboardInterrupt:
        return 0
