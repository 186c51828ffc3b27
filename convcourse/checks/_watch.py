"""Watching a learner's call, and keeping the grader's answers out of learner code's reach.

Two concerns, both about what learner code can do while grading runs in its own process:

* :class:`CallWatch` wraps one call of learner code. It records every aten operation the call
  reaches with torch's legacy profiler (RecordFunction callbacks in C++: they see operations called
  through aliases, ``torch.ops.aten``, Tensor subclasses and with the Python dispatch modes disabled,
  none of which a ``TorchDispatchMode`` sees), traps calls into banned Python libraries with
  ``sys.setprofile`` (``numpy.fft``, ``scipy.signal`` ...), and notices a thread started during the
  call (in a sandboxed grading kernel any thread or process, however started: :func:`tasks_gone_since`).
  An audit hook installed at import (audit hooks cannot be removed) reports learner code that
  replaces the grader's ``sys.setprofile`` hook or adds audit hooks of its own.
* :func:`reference_section` is entered after the learner's function has returned and before the
  grader computes torch's answer. It refuses to grade while learner code could still run and look
  (a background thread, an audit hook, a torch function/dispatch mode, global module hooks,
  saved-tensor hooks), and silences what cannot be refused (trace/profile functions, signal
  handlers, gc callbacks) until the answers are gone again.
"""

from __future__ import annotations

import _thread
import contextlib
import gc
import os
import re
import signal
import sys
import threading
from typing import Any, Iterator

import torch
import torch.nn.modules.module as _module_hooks

from .errors import GradingError

# --------------------------------------------------------------------------- audit hook

_AUDIT = {"foreign_hooks": 0, "profile_changes": 0, "internal": 0}


def _audit(event: str, args: tuple) -> None:
    if event == "sys.addaudithook":
        _AUDIT["foreign_hooks"] += 1
    elif event in ("sys.setprofile", "sys.settrace") and not _AUDIT["internal"]:
        _AUDIT["profile_changes"] += 1


sys.addaudithook(_audit)


@contextlib.contextmanager
def _internal() -> Iterator[None]:
    _AUDIT["internal"] += 1
    try:
        yield
    finally:
        _AUDIT["internal"] -= 1


def _set_profile(hook: Any) -> None:
    with _internal():
        sys.setprofile(hook)


def _set_trace(hook: Any) -> None:
    with _internal():
        sys.settrace(hook)


# --------------------------------------------------------------------------- threads

_START_NEW_THREAD = _thread.start_new_thread
_STARTED_DURING_CALL = {"count": 0, "watching": 0}


def _start_new_thread(function: Any, args: tuple, kwargs: dict | None = None) -> int:
    if _STARTED_DURING_CALL["watching"]:
        _STARTED_DURING_CALL["count"] += 1
    if kwargs is None:
        return _START_NEW_THREAD(function, args)
    return _START_NEW_THREAD(function, args, kwargs)


# Every new thread goes through _thread.start_new_thread (threading binds it at import as
# _start_new_thread): both names now count threads started while a learner call is watched.
_thread.start_new_thread = _start_new_thread
_thread.start_new = _start_new_thread
threading._start_new_thread = _start_new_thread  # type: ignore[attr-defined]

# tqdm (the capstone's progress bar) starts a monitor thread that only tunes how often the bar redraws;
# switched off so that a progress bar is not "a thread started by learner code".
try:
    import tqdm.std as _tqdm_std

    _tqdm_std.tqdm.monitor_interval = 0
except ImportError:  # pragma: no cover - tqdm is pinned in the environment
    pass

#: Threads of the kernel itself (ipykernel's heartbeat, IOPub, control, IPython's history).
_TRUSTED_THREAD_MODULES = (
    "ipykernel.",
    "IPython.",
    "jupyter_client.",
    "zmq.",
    "tornado.",
    "asyncio.",
    "concurrent.futures.",
    "debugpy.",
    "pydevd",
    "_pytest.",
    "pytest_timeout",
    "execnet.",
    "xdist.",
    "convcourse.grading.",
    "nbclient.",
    "comm.",
    "ipywidgets.",
)
# Thread objects, not idents: an ident can be reused by a later thread (and a fork-server kernel
# inherits the server's idents, whose threads no longer exist after the fork).
_BASELINE_THREADS: list[threading.Thread] = list(threading.enumerate())
# Threads started with _thread before this import (a test runner's I/O thread, say) have no Thread object.
_BASELINE_RAW_IDENTS: set[int] = set(sys._current_frames()) - {t.ident for t in _BASELINE_THREADS}


def mark_baseline() -> None:
    """Record the threads alive now as the kernel's own (the grading kernel may call it at start-up)."""
    _BASELINE_THREADS.extend(t for t in threading.enumerate() if not any(t is b for b in _BASELINE_THREADS))
    _BASELINE_RAW_IDENTS.update(set(sys._current_frames()) - {t.ident for t in threading.enumerate()})


def _module_of(obj: Any) -> str:
    owner = getattr(obj, "__self__", None)
    if owner is not None and not isinstance(owner, type(sys)):
        obj = type(owner)
    return (getattr(obj, "__module__", None) or "") + "."


def _trusted(thread: threading.Thread) -> bool:
    if any(thread is known for known in _BASELINE_THREADS) or thread is threading.main_thread():
        return True
    if isinstance(thread, threading._DummyThread):  # type: ignore[attr-defined]
        return False
    plain = type(thread) in (threading.Thread, threading.Timer)
    if not plain and not _module_of(type(thread)).startswith(_TRUSTED_THREAD_MODULES):
        return False
    target = getattr(thread, "_target", None) or getattr(thread, "function", None)
    if plain:
        return target is not None and _module_of(target).startswith(_TRUSTED_THREAD_MODULES)
    return target is None or _module_of(target).startswith(_TRUSTED_THREAD_MODULES)


def foreign_threads() -> list[str]:
    """Names of live Python threads that are not the kernel's own."""
    current = threading.get_ident()
    by_ident = {t.ident: t for t in threading.enumerate()}
    found = []
    for ident in sys._current_frames():
        if ident == current:
            continue
        thread = by_ident.get(ident)
        if thread is None and ident in _BASELINE_RAW_IDENTS:
            continue
        if thread is None or not _trusted(thread):
            found.append(getattr(thread, "name", f"thread {ident}"))
    return found


# --------------------------------------------------------------------------- tasks of a sandboxed kernel

#: In a sandboxed grading kernel (:mod:`convcourse.grading.sandbox`) the PID namespace is the kernel's own (and its
#: fork server's, which starts nothing while a learner is graded), so the namespace's last PID tells whether a call
#: created any thread or process, by whatever route: the ``_thread`` module imported afresh (its functions are not
#: the counting wrapper above), ``os.fork``, ``subprocess``, ctypes. Decided once, when the kernel starts.
_LAST_PID = "/proc/sys/kernel/ns_last_pid"
_WATCH_TASKS = os.environ.get("CONVCOURSE_SANDBOXED") == "1" and os.access(_LAST_PID, os.R_OK)
_OPEN, _READ, _CLOSE, _LISTDIR = os.open, os.read, os.close, os.listdir
#: More PIDs than this taken during one call: refused without looking at each.
_MAX_NEW_TASKS = 4096


def last_pid() -> int | None:
    """The last PID handed out in a sandboxed kernel's PID namespace; None outside the sandbox."""
    if not _WATCH_TASKS:
        return None
    try:
        fd = _OPEN(_LAST_PID, os.O_RDONLY)
        try:
            return int(_READ(fd, 32))
        finally:
            _CLOSE(fd)
    except (OSError, ValueError):
        return None


def tasks_gone_since(before: int | None) -> bool:
    """Whether a thread or process created since :func:`last_pid` returned ``before`` has ended again (or still
    runs as a process of its own). A thread pool's workers (OpenMP, BLAS) stay alive in this process and do not
    count; a thread of learner code that still runs is found by :func:`foreign_threads`."""
    after = last_pid()
    if before is None or after is None or after == before:
        return False
    if after < before or after - before > _MAX_NEW_TASKS:
        return True
    try:
        alive = set(_LISTDIR("/proc/self/task"))
    except OSError:
        return True
    return any(str(pid) not in alive for pid in range(before + 1, after + 1))


# --------------------------------------------------------------------------- watching one call

_PROFILER_CONFIG = torch.autograd.ProfilerConfig(
    torch.autograd.ProfilerState.CPU, False, False, False, False, False, torch._C._profiler._ExperimentalConfig()
)
_ENABLE = torch.autograd._enable_profiler_legacy
_DISABLE = torch.autograd._disable_profiler_legacy
_ENABLED = torch.autograd._profiler_enabled

#: Python libraries whose convolutions/FFTs an exercise may ban: (label, module-path prefixes).
LIBRARY_CONVOLUTIONS = (
    "numpy.fft, numpy.convolve/correlate, scipy.signal, scipy.ndimage, scipy.fft",
    ("numpy/fft/", "scipy/signal/", "scipy/ndimage/", "scipy/fft/", "scipy/fftpack/"),
    ("correlate", "correlate2", "convolve"),
)
_AUTOGRAD_EVENT = re.compile(r"^autograd::engine::evaluate_function: (.*)$|^(\w*Backward\d*)$|^torch::autograd::(.*)$")


class CallWatch:
    """Records the aten ops (and autograd nodes) one learner call reaches; traps banned libraries.

    ``libraries``: (label, path prefixes, C function names) of Python code the call may not enter.
    After the ``with`` block: ``ops`` (aten names without the ``aten::`` prefix), ``autograd``
    (autograd node names run), ``library_hits``, ``threads_started``, ``tasks_ended`` (where ops are recorded, in
    a sandboxed kernel: a thread or process the call created and that is gone again, however it was started),
    ``removed`` (a monitor was switched off by learner code).
    """

    def __init__(self, libraries: tuple | None = None, record_ops: bool = True):
        self.libraries = libraries
        # Off where nothing is banned (the capstone's training: millions of ops the profiler would keep).
        self.record_ops = record_ops
        self.ops: set[str] = set()
        self.autograd: set[str] = set()
        self.library_hits: list[str] = []
        self.threads_started = 0
        self.tasks_ended = False
        self.removed: list[str] = []
        self._profile_changes = 0
        self._previous_profile = None
        self._entered = False

    # sys.setprofile hook: Python calls into banned library files, C calls of banned numpy functions
    def _profile(self, frame, event, arg):
        if event == "call":
            path = frame.f_code.co_filename.replace(os.sep, "/")
            for prefix in self.libraries[1]:
                if prefix in path:
                    module = path[path.index(prefix) :].rsplit(".py", 1)[0].replace("/", ".")
                    self.library_hits.append(f"{module}.{frame.f_code.co_name}")
                    raise GradingError("banned library")
        elif (
            event == "c_call"
            and getattr(arg, "__name__", "") in self.libraries[2]
            and (getattr(arg, "__module__", None) or "").startswith(("numpy", "scipy"))
        ):
            self.library_hits.append(f"numpy.{arg.__name__}")
            raise GradingError("banned library")

    def __enter__(self) -> "CallWatch":
        problems = foreign_threads()
        if problems:
            raise GradingError(_thread_message(problems))
        if _ENABLED():
            raise GradingError(
                "cannot grade: a torch profiler is running in this notebook (torch.profiler / "
                "torch.autograd.profiler); stop it before the tests run."
            )
        self._profile_changes = _AUDIT["profile_changes"]
        if self.record_ops:
            _ENABLE(_PROFILER_CONFIG)
        self._entered = True
        if self.libraries is not None:
            self._previous_profile = sys.getprofile()
            self._hook = self._profile
            _set_profile(self._hook)
        self._threads_before = _STARTED_DURING_CALL["count"]
        _STARTED_DURING_CALL["watching"] += 1
        # Only where something is banned: a training call may use a DataLoader's worker processes.
        self._last_pid = last_pid() if self.record_ops else None
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        _STARTED_DURING_CALL["watching"] -= 1
        self.threads_started = _STARTED_DURING_CALL["count"] - self._threads_before
        self.tasks_ended = tasks_gone_since(self._last_pid)
        if self.libraries is not None:
            if sys.getprofile() is not self._hook and not self.library_hits:
                self.removed.append("sys.setprofile hook")
            _set_profile(self._previous_profile)
        if _AUDIT["profile_changes"] != self._profile_changes:
            self.removed.append("sys.setprofile/sys.settrace hook")
        if not self.record_ops:
            if _ENABLED():
                self.removed.append("profiler (learner code started one)")
                _DISABLE()
            return False
        try:
            result = _DISABLE()
        except RuntimeError:
            self.removed.append("profiler")
            return False
        for thread_events in result:
            # Ranges nest (push/pop): an aten op counts when no other aten op encloses it, i.e. when learner
            # code (or autograd, or a record_function range) called it, not when torch's own op called it
            # internally (Tensor.repeat runs aten::unfold inside, which is not the learner unfolding).
            stack: list[bool] = []
            for event in thread_events:
                kind = event.kind()
                if kind == "pop":
                    if stack:
                        stack.pop()
                    continue
                name = event.name()
                is_aten = name.startswith("aten::")
                if kind == "push":
                    if is_aten and not any(stack):
                        self.ops.add(name[6:])
                    stack.append(is_aten)
                if is_aten:
                    continue
                else:
                    match = _AUTOGRAD_EVENT.match(name)
                    if match:
                        node = next(g for g in match.groups() if g is not None)
                        self.autograd.add(node.rsplit("::", 1)[-1])
        return False


def _thread_message(names: list[str]) -> str:
    return (
        "cannot grade: code in this notebook started a background thread that is still running "
        f"({', '.join(names[:3])}). Grading compares your results only after your code has finished; "
        "remove the thread (or join it) and restart the kernel."
    )


# --------------------------------------------------------------------------- the reference section


def _hook_problems() -> list[str]:
    found = []
    if _AUDIT["foreign_hooks"]:
        found.append("an audit hook (sys.addaudithook)")
    if torch._C._len_torch_function_stack():
        found.append("a torch function mode (TorchFunctionMode) left active")
    if torch._C._len_torch_dispatch_stack():
        found.append("a torch dispatch mode (TorchDispatchMode) left active")
    for name in (
        "_global_forward_hooks",
        "_global_forward_pre_hooks",
        "_global_backward_hooks",
        "_global_backward_pre_hooks",
        "_global_forward_hooks_with_kwargs",
        "_global_forward_hooks_always_called",
    ):
        if getattr(_module_hooks, name, None):
            found.append(f"a global nn.Module hook (torch.nn.modules.module.{name})")
            break
    top = getattr(torch._C._autograd, "_top_saved_tensors_default_hooks", None)
    if top is not None and top(False) is not None:
        found.append("saved-tensor hooks (torch.autograd.graph.saved_tensors_hooks) left active")
    if _ENABLED():
        found.append("a running torch profiler")
    threads = foreign_threads()
    if threads:
        found.append(f"a background thread ({', '.join(threads[:3])})")
    return found


@contextlib.contextmanager
def reference_section(exercise: str) -> Iterator[None]:
    """Run the grader's own computations (torch's answer, known mistakes) where learner code cannot run.

    Refuses (GradingError) when learner code left something behind that would run during it;
    switches off trace/profile functions, gc callbacks and signal delivery until it ends, and
    collects garbage on the way out so that no answer survives in a reference cycle."""
    problems = _hook_problems()
    if problems:
        raise GradingError(
            f"{exercise}: cannot grade, because code in this notebook installed "
            f"{', '.join(problems)}, which could watch or change the grader's own computation. "
            "Remove it and restart the kernel."
        )
    trace, profile = sys.gettrace(), sys.getprofile()
    callbacks = list(gc.callbacks)
    blocked = None
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(Exception):
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    gc_was_enabled = gc.isenabled()
    _set_trace(None)
    _set_profile(None)
    gc.callbacks[:] = []
    gc.disable()
    try:
        yield
    finally:
        # Everything the section made is in the youngest generation (collection was off): collecting that
        # one frees any answer caught in a reference cycle, without the cost of a full collection.
        gc.collect(0)
        if gc_was_enabled:
            gc.enable()
        gc.callbacks[:] = callbacks
        _set_profile(profile)
        _set_trace(trace)
        if blocked is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
