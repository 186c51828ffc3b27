"""Sandboxed grading kernels (Linux): each learner's code runs in its own bubblewrap namespaces.

What a sandboxed kernel sees (everything else of the machine does not exist for it):

- its work folder ``/home/learner``: a private, size-capped tmpfs (its cwd and $HOME) that starts with
  a copy of the learner's submitted files (read-only at ``/srv/submission``, copied in by
  :mod:`convcourse.grading.kernel` before any learner code runs). Nothing it writes reaches the disk,
  and nothing it writes is ever copied back: nbgrader's trusted side keeps the executed notebook only;
- a private, size-capped ``/tmp``;
- read-only: the system directories (``/usr``, ``/bin``, ``/lib*``, a few files of ``/etc``), the Python
  installation, the virtual environment, the ``convcourse`` package directory and ``data/`` — never the
  course folder, the repository root (answer keys in ``autograder/source``, ``solutions/``), the
  gradebook or another learner;
- its own network namespace (no interface but a loopback of its own: no network at all), its own PID,
  IPC, UTS and cgroup namespaces (``/proc`` shows only its own processes: no ancestor's cwd or command
  line), a user namespace it cannot nest (``--disable-userns``) and no capabilities;
- the directory of its unix sockets: kernel and client talk over ZeroMQ's ``ipc`` transport;
- a process-count cap: a pids cgroup where one can be created (root), else ``RLIMIT_NPROC``.

The memory and CPU caps of :mod:`.limits` apply inside as before, and the kernel's environment is
:func:`kernel_environment` (an allow-list: no database URL, token or JupyterHub variable reaches it).

``CONVCOURSE_SANDBOX=0`` turns the sandbox off; where bubblewrap is missing or cannot create namespaces
(macOS, restricted containers) grading runs unsandboxed and says so (:func:`describe`).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ENV_SWITCH = "CONVCOURSE_SANDBOX"
#: The kernel's work folder (cwd and $HOME) inside the sandbox.
WORK = "/home/learner"
#: Where the learner's submitted files are visible, read-only, inside the sandbox.
INPUT = "/srv/submission"
#: Set in a sandboxed kernel's environment: the folder whose files are copied into its work folder.
INPUT_ENV = "CONVCOURSE_KERNEL_INPUT"
#: Set in a sandboxed kernel's environment: what the fork server wipes between learners.
SANDBOXED_ENV = "CONVCOURSE_SANDBOXED"

#: Environment variables a grading kernel keeps (names, or prefixes ending in "_"); all others are dropped.
KEEP_ENV = (
    "PATH",
    "PYTHONPATH",
    "PYTHONHASHSEED",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "PYTHONIOENCODING",
    "PYTHONUTF8",
    "PYTHONWARNINGS",
    "LANG",
    "LANGUAGE",
    "LC_",
    "TZ",
    "TERM",
    "COLUMNS",
    "MPLBACKEND",
    "MPLCONFIGDIR",
    "OMP_",
    "GOMP_",
    "KMP_",
    "MKL_",
    "OPENBLAS_",
    "NUMEXPR_",
    "TORCHINDUCTOR_",
    "TORCH_HOME",
    "HOME",
    "TMPDIR",
    "VIRTUAL_ENV",
    "JPY_PARENT_PID",
    "JPY_SESSION_NAME",
    "CONVCOURSE_KERNEL_",
    "CONVCOURSE_DATA",
    "CONVCOURSE_SELFCHECK",
    "CONVCOURSE_FORK_KERNELS",
    "CONVCOURSE_SANDBOX",
    "NBGRADER_EXECUTION",
    "PYDEVD_DISABLE_FILE_VALIDATION",
)
#: Even among kept variables: names that look like secrets are dropped.
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE", "API_KEY", "PRIVATE")
#: Files of /etc a kernel needs (dynamic loader, users, time zone, locale); the rest of /etc stays hidden.
ETC = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/locale.alias",
    "/etc/alternatives",
    "/etc/fonts",
    "/etc/mime.types",
)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")


def _int_env(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def tmp_mb() -> int:
    """Size of a sandbox's /tmp in MiB ($CONVCOURSE_SANDBOX_TMP_MB)."""
    return _int_env("CONVCOURSE_SANDBOX_TMP_MB", 256)


def work_mb() -> int:
    """Size of a sandbox's work folder in MiB ($CONVCOURSE_SANDBOX_WORK_MB)."""
    return _int_env("CONVCOURSE_SANDBOX_WORK_MB", 256)


def max_processes() -> int:
    """Processes and threads a sandbox may hold at once ($CONVCOURSE_SANDBOX_PROCESSES)."""
    return _int_env("CONVCOURSE_SANDBOX_PROCESSES", 128)


def switched_off() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "no", "false", "off")


@functools.lru_cache(maxsize=None)
def _probe(bwrap: str) -> str | None:
    try:
        done = subprocess.run(
            [bwrap, *_namespace_args(), "--ro-bind", "/", "/", "--proc", "/proc", "true"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap could not run ({error})"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return f"bubblewrap cannot create namespaces here ({last})"
    return None


def unavailable() -> str | None:
    """Why grading kernels cannot be sandboxed here (or are not), or None."""
    if switched_off():
        return f"turned off ({ENV_SWITCH}={os.environ[ENV_SWITCH]})"
    if not sys.platform.startswith("linux"):
        return f"namespaces need Linux (this is {sys.platform})"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    return _probe(bwrap)


def enabled() -> bool:
    return unavailable() is None


def describe() -> str:
    """One line for reports and logs: sandboxed (and how), or UNSANDBOXED and why."""
    reason = unavailable()
    if reason is not None:
        return (
            f"UNSANDBOXED: {reason}; learner code ran with this user's files, processes and network "
            "(memory/CPU caps and per-cell limits still applied)"
        )
    cap = ProcessCap.kind()
    return (
        f"sandboxed (bubblewrap): each kernel in its own namespaces, no network, only its own work folder "
        f"({work_mb()} MiB) and /tmp ({tmp_mb()} MiB), environment read-only, at most {max_processes()} "
        f"processes ({cap})"
    )


# ------------------------------------------------------------------------------------------ environment


def kernel_environment(env: dict[str, str], sandboxed: bool | None = None) -> dict[str, str]:
    """The environment a grading kernel gets from ``env``: allow-listed names only, no secrets; in the
    sandbox $HOME is the work folder and caches live in /tmp."""
    sandboxed = enabled() if sandboxed is None else sandboxed
    kept = {}
    for name, value in env.items():
        if not any(name == k or (k.endswith("_") and name.startswith(k)) for k in KEEP_ENV):
            continue
        if any(word in name.upper() for word in SECRET_WORDS) or ("://" in value and "@" in value):
            continue
        kept[name] = value
    if sandboxed:
        kept.update(
            {"HOME": WORK, "TMPDIR": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib", INPUT_ENV: INPUT, SANDBOXED_ENV: "1"}
        )
        kept.pop("VIRTUAL_ENV", None)
    return kept


# ------------------------------------------------------------------------------------ process-count cap


class ProcessCap:
    """A pids cgroup holding one sandbox (root, cgroup v1 ``pids`` or v2 with the pids controller)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def _parent() -> Path | None:
        v1 = Path("/sys/fs/cgroup/pids")
        if v1.is_dir() and os.access(v1, os.W_OK):
            return v1
        v2 = Path("/sys/fs/cgroup")
        try:
            if "pids" in (v2 / "cgroup.subtree_control").read_text().split() and os.access(v2, os.W_OK):
                return v2
        except OSError:
            pass
        return None

    @classmethod
    def kind(cls) -> str:
        if cls._parent() is not None:
            return "pids cgroup"
        if os.geteuid() != 0:
            return "RLIMIT_NPROC"
        return "no process cap: running as root without a writable pids cgroup"

    @classmethod
    def create(cls, name: str) -> "ProcessCap | None":
        parent = cls._parent()
        if parent is None:
            return None
        path = parent / f"convcourse-{os.getpid()}-{name}"
        try:
            path.mkdir(exist_ok=True)
            (path / "pids.max").write_text(str(max_processes()))
        except OSError:
            return None
        return cls(path)

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in self.procs.read_text().split()]
        except OSError:
            return []

    def kill_all(self) -> None:
        import signal

        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            import time

            time.sleep(0.05)

    def remove(self) -> None:
        self.kill_all()
        try:
            self.path.rmdir()
        except OSError:
            pass


def nproc_limit() -> int | None:
    """RLIMIT_NPROC for a sandbox when no pids cgroup is available and we are not root (root ignores it):
    this user's current processes and threads plus :func:`max_processes`."""
    if ProcessCap._parent() is not None or os.geteuid() == 0:
        return None
    uid = os.geteuid()
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                pass
    return count + max_processes()


# ------------------------------------------------------------------------------------------ the sandbox


def _namespace_args() -> list[str]:
    return ["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--cap-drop", "ALL"]


def _ro(path: str | Path, at: str | Path | None = None) -> list[str]:
    return ["--ro-bind", str(path), str(at or path)]


def mount_args(ipc_dir: Path, input_dir: Path) -> list[str]:
    """bubblewrap's options: namespaces and the file system a kernel sees (see the module docstring)."""
    import convcourse

    # The private /tmp first: the environment, the package or the data may themselves live under /tmp
    # (a checkout in a temporary folder), and binds made after the tmpfs show through it.
    args = _namespace_args() + ["--proc", "/proc", "--dev", "/dev", "--size", str(tmp_mb() * 2**20), "--tmpfs", "/tmp"]
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += _ro(path)
    for path in ETC:
        if os.path.exists(path):
            args += _ro(path)
    if os.path.isdir("/sys/devices/system/cpu"):  # torch's cpuinfo reads the CPU topology
        args += _ro("/sys/devices/system/cpu")
    roots: dict[str, str] = {}
    for prefix in {sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix}:
        roots[prefix] = os.path.realpath(prefix)
    package = Path(convcourse.__file__).resolve().parent
    data = Path(os.environ.get("CONVCOURSE_DATA") or package.parent / "data").resolve()
    for at, real in sorted(roots.items()):
        args += _ro(real) + ([] if at == real else _ro(real, at))
    args += _ro(package)
    if data.is_dir():
        args += _ro(data)
    args += [
        "--size",
        str(work_mb() * 2**20),
        "--tmpfs",
        WORK,
        "--bind",
        str(ipc_dir),
        str(ipc_dir),
        *_ro(input_dir, INPUT),
        "--chdir",
        WORK,
    ]
    return args


_WRAPPER = 'cg=$1; a=$2; fd=$3; shift 3; if [ -n "$cg" ]; then echo $$ > "$cg" || exit 97; fi; exec "$@" {fd}<"$a"'


class Sandbox:
    """One bubblewrap sandbox (one ordinary kernel, or one fork server and the kernels it forks).

    ``ipc_dir`` (host, same path inside) holds the kernel's unix sockets and connection file;
    ``input_dir`` (host) holds the learner's files, visible read-only at :data:`INPUT`."""

    def __init__(self, name: str, ipc_dir: Path | None = None, input_dir: Path | None = None) -> None:
        self.name = name
        _remove_stale()
        # short: unix socket paths are limited to 107 bytes
        self.root = Path(tempfile.mkdtemp(prefix=f"ccsb{os.getpid()}-"))
        self.ipc_dir = ipc_dir or self.root / "ipc"
        self.input_dir = input_dir or self.root / "in"
        self.ipc_dir.mkdir(exist_ok=True)
        self.input_dir.mkdir(exist_ok=True)
        self.cap = ProcessCap.create(name)
        self.nproc = None if self.cap else nproc_limit()

    def command(self, argv: list[str], fd: int = 9, setenv: dict[str, str] | None = None) -> list[str]:
        """``argv`` run inside this sandbox (its options are read from a file on fd ``fd``, so that the
        command line visible in /proc holds no host paths); ``setenv``: variables set inside."""
        options = self.root / f"bwrap-{os.urandom(4).hex()}.args"
        args = mount_args(self.ipc_dir, self.input_dir)
        for name, value in (setenv or {}).items():
            args += ["--setenv", name, value]
        options.write_bytes(b"\0".join(a.encode() for a in args) + b"\0")
        wrapper = _WRAPPER.replace("{fd}", str(fd))
        return [
            "/bin/sh",
            "-c",
            wrapper,
            "sh",
            str(self.cap.procs) if self.cap else "",
            str(options),
            str(fd),
            shutil.which("bwrap") or "bwrap",
            "--args",
            str(fd),
            "--",
            *argv,
        ]

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        env = kernel_environment(env, sandboxed=True)
        if self.nproc is not None:
            env["CONVCOURSE_KERNEL_NPROC"] = str(self.nproc)
        return env

    def fill(self, source: Path) -> None:
        """Make the input folder a safe copy of the learner's files in ``source`` (see :func:`safe_copy`)."""
        clear(self.input_dir)
        safe_copy(source, self.input_dir, skip_notebooks=True)

    def close(self) -> None:
        if self.cap is not None:
            self.cap.remove()
        shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True


@functools.lru_cache(maxsize=None)
def _remove_stale() -> None:
    """Once per process: remove sandbox folders and empty pids cgroups that killed graders left behind."""
    import re

    for entry in Path(tempfile.gettempdir()).glob("ccsb*-*"):
        match = re.fullmatch(r"ccsb(\d+)-\w+", entry.name)
        if match and not _alive(match.group(1)) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
    parent = ProcessCap._parent()
    for entry in parent.glob("convcourse-*") if parent else ():
        match = re.fullmatch(r"convcourse-(\d+)-.*", entry.name)
        if match and not _alive(match.group(1)):
            ProcessCap(entry).remove()


def clear(folder: str | Path, keep: frozenset[str] | set[str] = frozenset()) -> None:
    """Delete everything inside ``folder`` (links are removed, never followed), except the paths in ``keep``
    (mount points) and the folders on the way to them."""
    for entry in list(os.scandir(folder)):
        if entry.path in keep:
            continue
        if any(path.startswith(entry.path + "/") for path in keep):
            clear(entry.path, keep)
        elif entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:
                os.unlink(entry.path)
            except OSError:
                pass


# ------------------------------------------------------------------------------------ untrusted files

#: Bounds on what the trusted side copies out of (or into) a folder a learner controls.
MAX_FILES = 200
MAX_FILE_BYTES = 50 * 2**20
MAX_TOTAL_BYTES = 200 * 2**20
MAX_DEPTH = 6


def safe_name(name: str) -> bool:
    """A file name the trusted side will copy: printable, no separators, not hidden, not too long."""
    return (
        0 < len(name) <= 200
        and name not in (".", "..")
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
        and name.isprintable()
    )


def safe_copy(source: Path, target: Path, skip_notebooks: bool = False) -> list[str]:
    """Copy regular files from ``source`` to ``target``: never following links, only safe names, at most
    :data:`MAX_FILES` files of :data:`MAX_FILE_BYTES` each and :data:`MAX_TOTAL_BYTES` together, at most
    :data:`MAX_DEPTH` folders deep. Returns what was skipped and why (nothing is silently dropped)."""
    import stat

    skipped: list[str] = []
    state = {"files": 0, "bytes": 0}
    target.mkdir(parents=True, exist_ok=True)

    def walk(src: Path, dst: Path, depth: int) -> None:
        try:
            entries = sorted(os.scandir(src), key=lambda e: e.name)
        except OSError as error:
            skipped.append(f"{src.name}/ (unreadable: {error.strerror})")
            return
        for entry in entries:
            rel = os.path.relpath(entry.path, source)
            if not safe_name(entry.name):
                if entry.name != ".ipynb_checkpoints":
                    skipped.append(f"{rel} (unsafe name)")
                continue
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                if depth >= MAX_DEPTH:
                    skipped.append(f"{rel}/ (too deep)")
                    continue
                (dst / entry.name).mkdir(exist_ok=True)
                walk(Path(entry.path), dst / entry.name, depth + 1)
            elif not stat.S_ISREG(info.st_mode):
                skipped.append(f"{rel} (a link or special file)")
            elif skip_notebooks and entry.name.endswith(".ipynb"):
                continue
            elif info.st_size > MAX_FILE_BYTES:
                skipped.append(f"{rel} ({info.st_size} bytes, over the limit of {MAX_FILE_BYTES} bytes)")
            elif state["files"] >= MAX_FILES or state["bytes"] + info.st_size > MAX_TOTAL_BYTES:
                skipped.append(f"{rel} (over the limit of {MAX_FILES} files / {MAX_TOTAL_BYTES // 2**20} MiB)")
            else:
                _copy_file(Path(entry.path), dst / entry.name, info.st_size)
                state["files"] += 1
                state["bytes"] += info.st_size

    walk(Path(source), Path(target), 0)
    return skipped


def _copy_file(src: Path, dst: Path, size: int) -> None:
    """Copy one regular file without following a link at either end, at most ``size`` bytes."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    fd_in = os.open(src, flags)
    try:
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            left = size
            while left > 0:
                chunk = os.read(fd_in, min(left, 1 << 20))
                if not chunk:
                    break
                os.write(fd_out, chunk)
                left -= len(chunk)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)
