"""Pre-warmed grading kernels: a fork server that starts each learner's kernel by ``fork()``.

A grading kernel started from scratch spends ~2.3 s of CPU starting Python and importing torch, IPython
and the checks before the first cell runs. A grading worker (:mod:`convcourse.instructor.worker`)
therefore starts one *fork server* (this module run as ``python -m convcourse.grading.forkserver FD``):
a process that imports what every grading kernel imports (:data:`PRELOAD`), runs no learner code and
starts no threads, and then waits for requests on the UNIX socket ``FD``. For each notebook it forks a
fresh child, which becomes that learner's kernel:

- the child starts a new session (its own process group, as jupyter_client's launcher does), takes the
  environment, working directory and arguments the worker's kernel manager prepared, resets what must
  not be shared across fork (signal handlers, the server's sockets, pyzmq's context singleton, numpy's
  and torch's global random state; Python's ``random`` reseeds itself), caps its memory and CPU time
  (:mod:`convcourse.grading.limits`) and runs ``IPKernelApp`` exactly like ``python -m
  ipykernel_launcher``, including ``--IPKernelApp.exec_lines=import convcourse.grading.kernel``: the
  integrity snapshot and the guard's seal are taken in the child, after it became the learner's kernel;
- every child is a separate process, so nothing a learner's code does reaches the server or the next
  learner; the server reaps its children on SIGCHLD and kills those still running when the worker
  goes away;
- the worker gets a pidfd for each child (``SCM_RIGHTS``), so polling and signalling act on exactly that
  process, never on a reused pid (:class:`ForkedKernel`); :mod:`convcourse.grading.forkkernel` plugs
  this into jupyter_client as a kernel provisioner.

Where kernels are sandboxed (:mod:`convcourse.grading.sandbox`), the whole server runs in one bubblewrap
sandbox per worker, and its kernels with it: a worker grades one learner at a time, and between two
learners (:meth:`ForkServer.sweep`) the server kills every process left in its PID namespace and wipes
the work folder and /tmp, while the worker refills the read-only input folder with the next learner's
files. So each kernel still sees only its own learner's files, and a server that starts once per worker
keeps its speed (one sandbox start per worker instead of one per learner).

The client side (:class:`ForkServer`) runs in the worker. ``CONVCOURSE_FORK_KERNELS=0`` turns fork
kernels off; where the server cannot run (not Linux, no pidfd, a failed import) workers start ordinary
kernels.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

#: Modules the server imports before it forks kernels: what ``import convcourse.grading.kernel`` and the
#: kernel app import, and what every lesson's first cell imports. No learner code runs before any of them
#: in a kernel started from scratch either.
PRELOAD = (
    "numpy",
    "torch",
    "torch.nn",
    "torch.nn.functional",
    "matplotlib",
    "matplotlib.pyplot",
    "IPython",
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "ipykernel.iostream",
    "ipykernel.comm",
    "ipykernel.debugger",  # what the kernel's debugger trait names; it imports debugpy (0.1 CPU-s)
    "convcourse.checks",
    "convcourse.checks._guard",
    "convcourse.checks.exercises",
    "convcourse.grading.probe",
    "convcourse.grading.limits",
    "convcourse.plots",
    "convcourse.data",
    "convcourse.selfcheck",
)
#: Modules that only some lessons' kernels import, which the server imports once a kernel it forked has (the
#: grader's integrity probe reports it: :meth:`ForkServer.preload`), so that the learners after the first get
#: them ready. torch imports torch._dynamo (1.3 CPU-s) on first need: an optimizer's step, FlopCounterMode
#: (lessons 07, 12 and 15); a server grading any other lesson never pays for it.
ON_DEMAND = ("torch._dynamo",)
ENV_SWITCH = "CONVCOURSE_FORK_KERNELS"
#: Variables read when the interpreter starts or a library loads (thread pools, paths, config dirs): a
#: kernel whose environment differs from the server's in one of them is not forked but started anew.
STARTUP_ENV = (
    "PYTHON",
    "OMP_",
    "GOMP_",
    "KMP_",
    "MKL_",
    "OPENBLAS_",
    "NUMEXPR_",
    "LD_",
    "TORCH",
    "CUDA",
    "MPLCONFIGDIR",
    "HOME",
    "XDG_",
    "PYDEVD_",
)
_MAX_MESSAGE = 1 << 20
_LAUNCHER = ("-m", "ipykernel_launcher")


class ForkServerError(RuntimeError):
    """The fork server is not available or did not answer."""


def unsupported() -> str | None:
    """Why fork kernels cannot be used here (or are turned off), or None."""
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "no", "false", "off"):
        return f"turned off ({ENV_SWITCH}={os.environ[ENV_SWITCH]})"
    if not sys.platform.startswith("linux"):
        return f"needs Linux (this is {sys.platform})"
    if not all(
        hasattr(m, n)
        for m, n in ((os, "fork"), (os, "pidfd_open"), (signal, "pidfd_send_signal"), (socket, "send_fds"))
    ):
        return "this Python has no fork/pidfd/send_fds"
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError as error:
        return f"pidfd_open is not available ({error})"
    return None


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _stop_library_threads() -> None:
    """Libraries that keep worker threads (numpy's OpenBLAS) stop them in a pthread_atfork handler: fork once
    so that they have (the caller then checks that no thread is left)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


# ===================================================================================== server process


class _Server:
    def __init__(self, sock: socket.socket, env_before: dict[str, str]) -> None:
        self.sock = sock
        # Variables the imports set (torch._dynamo sets TORCHINDUCTOR_CACHE_DIR): a kernel importing them itself
        # would have them too, so children get them unless the kernel's environment sets them.
        self.env_added = {k: v for k, v in os.environ.items() if env_before.get(k) != v}
        self.env_before = env_before
        self.children: dict[int, int | None] = {}  # pid -> exit status (None while running)
        self.wake_r, self.wake_w = os.pipe()
        self.mpl_backend = os.environ.get("MPLBACKEND")
        self.path = list(sys.path)

    # ---------------------------------------------------------------------------------- messages
    def send(self, payload: dict, fds: list[int] = ()) -> None:
        data = json.dumps(payload).encode()
        if fds:
            socket.send_fds(self.sock, [data], list(fds))
        else:
            self.sock.send(data)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.children:
                self.children[pid] = os.waitstatus_to_exitcode(status)

    def serve(self) -> None:
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select(); reaping happens in the loop
        while True:
            ready, _, _ = select.select([self.sock, self.wake_r], [], [])
            if self.wake_r in ready:
                os.read(self.wake_r, 4096)
            self.reap()
            if self.sock not in ready:
                continue
            try:
                data = self.sock.recv(_MAX_MESSAGE)
            except (ConnectionResetError, OSError):
                data = b""
            if not data:
                break
            request = json.loads(data)
            handler = getattr(self, f"op_{request.get('op')}", None)
            if handler is None:
                self.send({"error": f"unknown request {request.get('op')!r}"})
                continue
            try:
                handler(request)
            except Exception as error:  # noqa: BLE001 - answered, the server goes on
                self.send({"error": f"{type(error).__name__}: {error}"})
        self.kill_all()

    def op_status(self, request: dict) -> None:
        self.reap()
        pid = int(request["pid"])
        self.send({"pid": pid, "known": pid in self.children, "status": self.children.get(pid)})
        if self.children.get(pid) is not None:
            del self.children[pid]  # asked once, after it ended

    def op_preload(self, request: dict) -> None:
        """Import the modules of ``request["modules"]`` that are in :data:`ON_DEMAND` (any other name is
        ignored: the request repeats what a learner's kernel reported), as the start-up imports were."""
        import importlib

        imported = []
        for name in request.get("modules", []):
            if name in ON_DEMAND and name not in sys.modules:
                importlib.import_module(name)
                imported.append(name)
        if imported:
            _stop_library_threads()
            self.env_added = {k: v for k, v in os.environ.items() if self.env_before.get(k) != v}
        self.send({"imported": imported, "threads": _threads()})

    def op_sweep(self, request: dict) -> None:
        killed = self.kill_all(forget=False)
        if os.environ.get("CONVCOURSE_SANDBOXED"):
            killed += _reset_sandbox()
        self.send({"killed": killed})

    def kill_all(self, forget: bool = True) -> list[int]:
        """SIGKILL every running child's process group, wait for them; returns their pids."""
        self.reap()
        running = [pid for pid, status in self.children.items() if status is None]
        for pid in running:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        for pid in running:
            try:
                _, status = os.waitpid(pid, 0)
                self.children[pid] = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                pass
        if forget:
            self.children.clear()
        return running

    def op_spawn(self, request: dict) -> None:
        threads = _threads()
        if threads != 1:
            self.send({"error": f"the fork server is not single-threaded ({threads} threads); not forking"})
            return
        env = request["env"]
        differ = sorted(
            k
            for k in set(env) | set(self.env_before)
            if k.startswith(STARTUP_ENV) and env.get(k) != self.env_before.get(k)
        )
        if differ:
            self.send(
                {
                    "error": f"the kernel's environment differs from the fork server's in {', '.join(differ)} "
                    "(read when Python or a library starts); not forking"
                }
            )
            return
        ready_r, ready_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the learner's kernel; never returns
            os.close(ready_r)
            _child(request, self, ready_w)
        os.close(ready_w)
        self.children[pid] = None
        started = os.read(ready_r, 1)
        os.close(ready_r)
        pidfd = os.pidfd_open(pid)  # not reaped yet (only serve() reaps), so this is our child
        try:
            if started != b"1":
                self.send({"error": "the forked kernel ended during its set-up"})
                return
            self.send({"pid": pid}, [pidfd])
        finally:
            os.close(pidfd)


def _reset_sandbox() -> list[int]:
    """In a sandboxed server, between two learners: kill every other process of this PID namespace (but
    its init, pid 1), then empty the work folder and /tmp (except mounted folders: the ipc folder)."""

    me, killed = os.getpid(), []
    for _ in range(20):
        others = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]
        if not others:
            break
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
        time.sleep(0.05)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
    try:
        with open("/proc/self/mounts") as table:
            mounts = {line.split()[1] for line in table}
    except OSError:
        mounts = set()
    from .sandbox import clear

    for folder in ("/tmp", os.environ.get("HOME") or "/home/learner"):
        clear(folder, keep=mounts)
    os.makedirs(os.environ.get("MPLCONFIGDIR") or "/tmp/matplotlib", exist_ok=True)
    return sorted(set(killed))


def _child(request: dict, server: _Server, ready_w: int) -> None:
    """Turn this freshly forked process into a grading kernel; exits, never returns."""
    code: Any = 1
    try:
        os.setsid()  # own session and process group, like jupyter_client's launcher
        signal.set_wakeup_fd(-1)
        for fd in (server.wake_r, server.wake_w):
            os.close(fd)
        server.sock.close()
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.write(ready_w, b"1")
        os.close(ready_w)
        argv = _prepare(request, server)
        from ipykernel.kernelapp import IPKernelApp

        # parent_handle's default was read from $JPY_PARENT_PID when the server imported ipykernel.
        IPKernelApp.launch_instance(argv=argv, parent_handle=int(os.environ["JPY_PARENT_PID"]))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    except BaseException:  # noqa: BLE001 - reported like an uncaught exception, then exit 1
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            import atexit

            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
        if code is None:
            code = 0
        elif not isinstance(code, int):
            try:
                print(code, file=sys.stderr)
            except BaseException:  # noqa: BLE001
                pass
            code = 1
        os._exit(code & 0xFF)


def _prepare(request: dict, server: _Server) -> list[str]:
    """Give the child the kernel's environment, directory, arguments and limits; reset shared state."""
    os.environ.clear()
    os.environ.update(request["env"])
    for name, value in server.env_added.items():
        os.environ.setdefault(name, value)
    os.environ["JPY_PARENT_PID"] = str(os.getppid())  # the kernel exits when the server does
    if request.get("cwd"):
        os.chdir(request["cwd"])
    sys.path[:] = server.path
    import ipykernel_launcher

    argv = list(request["argv"])
    sys.argv = [ipykernel_launcher.__file__, *argv]

    from convcourse.grading import limits

    limits.apply()

    import numpy.random
    import torch
    import zmq

    # Seeded once, from the OS, when the server imported them: reseed as a new process would be.
    numpy.random.seed()
    torch.random.default_generator.seed()
    zmq.Context._instance = None
    zmq.Context._instance_pid = None
    backend = os.environ.get("MPLBACKEND")
    if backend != server.mpl_backend and "matplotlib" in sys.modules:
        # matplotlib read $MPLBACKEND when the server imported it; ipykernel sets the inline default.
        sys.modules["matplotlib"].rcParams["backend"] = backend or "module://matplotlib_inline.backend_inline"
    return argv


def _fail_for_warm_up() -> None:
    raise ValueError("warm-up")


def _warm_tracebacks() -> None:
    """Format one traceback as a kernel shows a cell's error (IPython's Context mode: stack_data, pygments).

    The first traceback a process formats fills caches that no output depends on: pygments compiles its
    Python lexer's rules, ``inspect.getmodule`` maps every loaded module's file. The first traceback took
    0.19 CPU-s and the next ones 0.02 (2026-12-02): each forked kernel whose cells raise paid the difference."""
    from IPython.core.ultratb import AutoFormattedTB

    try:
        _fail_for_warm_up()
    except ValueError as error:
        AutoFormattedTB(mode="Context").structured_traceback(type(error), error, error.__traceback__)


def main(argv: list[str] | None = None) -> int:
    """The server process: ``python -m convcourse.grading.forkserver FD`` (FD: a SOCK_SEQPACKET socket)."""
    args = sys.argv[1:] if argv is None else argv
    sock = socket.socket(fileno=int(args[0]))
    started = time.process_time()
    try:
        # As ipykernel_launcher does: what `python -m` put first on sys.path (the working directory)
        # is removed before the imports; IPython adds the kernel's own working directory back.
        if sys.path and (sys.path[0] == "" or os.path.abspath(sys.path[0]) == os.getcwd()):
            del sys.path[0]
        import importlib

        if os.environ.get("MPLCONFIGDIR"):
            os.makedirs(os.environ["MPLCONFIGDIR"], exist_ok=True)
        env_before = dict(os.environ)
        for name in PRELOAD:
            importlib.import_module(name)
        _warm_tracebacks()
        server = _Server(sock, env_before)
        _stop_library_threads()
        threads = _threads()
        if threads != 1:
            raise RuntimeError(f"the server is not single-threaded after its imports ({threads} threads)")
    except BaseException as error:  # noqa: BLE001 - reported to the worker, which falls back
        sock.send(json.dumps({"error": f"{type(error).__name__}: {error}"}).encode())
        return 1
    sock.send(
        json.dumps(
            {
                "ready": True,
                "pid": os.getpid(),
                "cpu_seconds": round(time.process_time() - started, 2),
                "modules": len(sys.modules),
            }
        ).encode()
    )
    try:
        server.serve()
    finally:
        server.kill_all()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # nothing to finalize: skip tearing down thousands of modules


# ====================================================================================== client side


def _pidfd_pid(pidfd: int) -> int | None:
    """The pid (in this process's PID namespace) of the process a pidfd refers to."""
    try:
        with open(f"/proc/self/fdinfo/{pidfd}") as info:
            for line in info:
                if line.startswith("Pid:"):
                    pid = int(line.split()[1])
                    return pid if pid > 0 else None
    except (OSError, ValueError):
        pass
    return None


class ForkedKernel:
    """A kernel forked by the server, with the :class:`subprocess.Popen` methods jupyter_client uses.

    It is not this process's child: its pidfd says when it ended (and signals reach exactly that
    process); the server, its parent, reports the exit status."""

    stdin = stdout = stderr = None

    def __init__(self, server: "ForkServer", pid: int, pidfd: int) -> None:
        self.server = server
        self.pid = pid
        self.pidfd: int | None = pidfd
        self.returncode: int | None = None
        self.host_pid = _pidfd_pid(pidfd) or pid

    def _ended(self, timeout: float | None = 0) -> bool:
        if self.pidfd is None:
            return True
        readable, _, _ = select.select([self.pidfd], [], [], timeout)
        return bool(readable)

    def poll(self) -> int | None:
        if self.returncode is None and self._ended():
            self.returncode = self.server.exit_status(self.pid)
            self.close()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and not self._ended(timeout):
            raise subprocess.TimeoutExpired(f"forked kernel {self.pid}", timeout)
        result = self.poll()
        assert result is not None
        return result

    def send_signal(self, signum: int) -> None:
        if self.poll() is None and self.pidfd is not None:
            signal.pidfd_send_signal(self.pidfd, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


class ForkServer:
    """The worker's handle on its fork server process."""

    def __init__(self, prefix: list[str], log=None) -> None:
        #: The interpreter and its options as the kernel spec starts kernels (before ``-m ipykernel_launcher``).
        self.prefix = list(prefix)
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.ready: dict | None = None
        self.lock = threading.Lock()
        #: The sandbox the server and its kernels run in (None: unsandboxed).
        self.sandbox = None
        #: The :data:`ON_DEMAND` modules asked for (:meth:`preload`).
        self.preloaded: set[str] = set()

    def start(self) -> "ForkServer":
        """Start the server process; it imports in the background until :meth:`wait_ready`."""
        from . import sandbox

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            cmd = [*self.prefix, "-m", "convcourse.grading.forkserver", str(theirs.fileno())]
            env = sandbox.kernel_environment(dict(os.environ), sandboxed=False)
            if sandbox.enabled():
                self.sandbox = sandbox.Sandbox(f"server{os.getpid()}")
                cmd = self.sandbox.command(cmd, fd=8 if theirs.fileno() == 9 else 9)
                env = self.sandbox.environment(dict(os.environ))
            self.proc = subprocess.Popen(cmd, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=2, env=env)
        finally:
            theirs.close()
        self.sock = ours
        return self

    def wait_ready(self, timeout: float = 300) -> dict:
        """Wait until the server has imported everything; raises ForkServerError if it could not."""
        if self.ready is not None:
            return self.ready
        if self.sock is None:
            raise ForkServerError("the fork server was not started")
        readable, _, _ = select.select([self.sock], [], [], timeout)
        if not readable:
            self.stop()
            raise ForkServerError(f"the fork server was not ready after {timeout:g} s")
        answer = self._receive()[0]
        if not answer.get("ready"):
            self.stop()
            raise ForkServerError(answer.get("error", "the fork server failed to start"))
        self.ready = answer
        return answer

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.sock is not None

    def kernel_args(self, cmd: list[str]) -> list[str] | None:
        """The kernel's own arguments if ``cmd`` starts an IPython kernel the way this server can, else None."""
        cmd = [os.path.expanduser(part) for part in cmd]
        n = len(self.prefix)
        if cmd[:n] != self.prefix or tuple(cmd[n : n + 2]) != _LAUNCHER:
            return None
        return cmd[n + 2 :]

    def _receive(self) -> tuple[dict, list[int]]:
        assert self.sock is not None
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, _MAX_MESSAGE, 4)
        except OSError as error:
            raise ForkServerError(f"the fork server did not answer ({error})") from error
        if not data:
            raise ForkServerError("the fork server has ended")
        return json.loads(data), fds

    def _request(self, payload: dict) -> tuple[dict, list[int]]:
        with self.lock:
            if not self.alive():
                raise ForkServerError("the fork server is not running")
            self.wait_ready()
            try:
                self.sock.send(json.dumps(payload).encode())
            except OSError as error:
                raise ForkServerError(f"the fork server is gone ({error})") from error
            answer, fds = self._receive()
        if "error" in answer:
            for fd in fds:
                os.close(fd)
            raise ForkServerError(answer["error"])
        return answer, fds

    def spawn(self, argv: list[str], env: dict[str, str], cwd: str | None) -> ForkedKernel:
        """Fork a kernel running ``ipykernel_launcher argv`` in ``cwd`` with environment ``env``."""
        answer, fds = self._request(
            {"op": "spawn", "argv": list(argv), "env": dict(env), "cwd": str(cwd) if cwd else None}
        )
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise ForkServerError("the fork server sent no pidfd")
        return ForkedKernel(self, int(answer["pid"]), fds[0])

    def exit_status(self, pid: int) -> int:
        """Exit status of a forked kernel that has ended (-1 when the server cannot tell any more)."""
        try:
            answer, _ = self._request({"op": "status", "pid": pid})
        except ForkServerError:
            return -1
        status = answer.get("status")
        return -1 if status is None else int(status)

    def preload(self, modules: list[str]) -> list[str]:
        """Have the server import those of ``modules`` that are in :data:`ON_DEMAND` and not yet imported
        (for the kernels it forks from now on); returns the ones it imported."""
        wanted = [m for m in modules if m in ON_DEMAND and m not in self.preloaded]
        if not wanted:
            return []
        answer, _ = self._request({"op": "preload", "modules": wanted})
        self.preloaded.update(wanted)
        return list(answer.get("imported", []))

    def sweep(self) -> list[int]:
        """Kill every kernel the server forked that is still running (the pids killed)."""
        answer, _ = self._request({"op": "sweep"})
        return list(answer.get("killed", []))

    def stop(self) -> None:
        """End the server (it kills any kernel still running)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None


# ============================================================================ the worker's fork server

_ACTIVE: ForkServer | None = None


def kernel_prefix(kernel_name: str = "python3") -> list[str]:
    """The interpreter and options the kernel spec ``kernel_name`` starts kernels with."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        argv = KernelSpecManager().get_kernel_spec(kernel_name).argv
        index = next(i for i in range(len(argv) - 1) if tuple(argv[i : i + 2]) == _LAUNCHER)
        return [os.path.expanduser(a) for a in argv[:index]]
    except Exception:  # noqa: BLE001 - no such spec or another launcher: the current interpreter
        return [sys.executable]


def start(log=None) -> ForkServer | None:
    """Start this process's fork server (used by :func:`active`); None, said in the log, where fork
    kernels are off or unavailable."""
    global _ACTIVE
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    reason = unsupported()
    if reason is None:
        try:
            _ACTIVE = ForkServer(kernel_prefix(), log).start()
            return _ACTIVE
        except OSError as error:
            reason = f"could not start ({error})"
    log(f"fork server: {reason}; grading kernels start as ordinary processes")
    return None


def active() -> ForkServer | None:
    """This process's fork server once it is ready, or None (ordinary kernels)."""
    global _ACTIVE
    server = _ACTIVE
    if server is None:
        return None
    try:
        if not server.alive():
            raise ForkServerError(
                f"the fork server process ended (exit code {server.proc.poll() if server.proc else None})"
            )
        server.wait_ready()
        return server
    except ForkServerError as error:
        server.log(f"fork server: {error}; grading kernels start as ordinary processes")
        server.stop()
        _ACTIVE = None
        return None


def stop() -> None:
    global _ACTIVE
    if _ACTIVE is not None:
        _ACTIVE.stop()
        _ACTIVE = None


if __name__ == "__main__":
    sys.exit(main())
