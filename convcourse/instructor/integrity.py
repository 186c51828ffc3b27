"""Integrity report for instructors: constructs that defeat a lesson's rules, and similar submissions.

``convcourse integrity LESSON`` reads every submission of a lesson (``submitted/<learner>/<lesson>/``)
without running it and reports, per learner and with the cell and line:

* **constructs** that get around what the checks can enforce inside the kernel: frame and gc
  introspection, torch's dispatch internals, other routes to torch's convolution (aliases,
  ``torch.ops.aten``, FFT and library convolutions) in lessons that ban it, autograd in the backward
  lesson, subclassing torch layers, reading files or the environment, shell escapes, threads and
  processes, monkeypatching torch/numpy/builtins/the course package, ctypes, dynamic code. Each code
  cell is turned into plain Python by IPython's own ``TransformerManager`` (so ``!cmd``, ``%pip`` and
  ``%%bash`` become the calls IPython would make) and read with :mod:`ast`; names are resolved through
  the notebook's imports (``F.conv2d`` is ``torch.nn.functional.conv2d``). A cell that does not parse
  is itself a finding. Only cells the learner can change count: locked and test cells are skipped
  (nbgrader restores their originals before grading), and a line the lesson's own ungraded cells
  contain unchanged is not reported there.
* **similarity** of each submission's own code to the public answer key and between learners, with
  copydetect (winnowing over tokens with names and strings normalised, as MOSS does): a learner's
  code is every code cell they can change minus the quiz answers; the lesson's own code (the released
  stubs and ungraded cells) is boilerplate and never counts as shared. A pair is flagged when the
  share of code in common reaches ``threshold`` (default 0.6) and at least ``MIN_SHARED`` characters
  of normalised code are shared.

Which bans a lesson has comes from the exercise registry (``Exercise.banned``), so the report
follows the checks: torch's convolution is a finding in lessons whose exercises ban it, except inside
a function or class named after an exercise of the lesson that allows it (lesson 11's
``Conv2dFunction.forward`` may call ``F.conv2d``; ``conv2d_backward`` may not).

Everything here flags for review: nothing is zeroed on suspicion, and grades are never touched.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import nbformat

from .course import REPO, CourseError, CourseRoot

#: Similarity (share of one side's code found in the other) at or above which a pair is flagged.
DEFAULT_THRESHOLD = 0.6
#: Fewer characters of normalised code in common than this is never flagged (short code is alike).
MIN_SHARED = 80
#: copydetect's k-gram length (characters of normalised code) and winnowing window; its defaults.
NOISE = 25
GUARANTEE = 30
#: How the answer key is named in similarity pairs.
ANSWER_KEY = "(answer key)"

#: Rule id -> what it means (the README's table and the terminal legend use these words).
RULES: dict[str, str] = {
    "syntax": "a code cell that does not parse (the report cannot see into it)",
    "unreadable": "the submitted file is not a readable notebook",
    "introspection": "frame/gc introspection (can find the checks' expected values)",
    "dispatch": "torch dispatch internals or private torch API (can switch off the ban tripwire)",
    "convolution": "another route to a convolution the lesson bans (aliases, torch.ops, FFT, scipy)",
    "unfold": "unfold/sliding windows in a lesson that asks for loops",
    "padding": "torch's or numpy's padding in the lesson that asks you to write it",
    "pooling": "torch's pooling (F.max_pool2d, nn.AvgPool2d ...) in the lesson that asks you to write it",
    "autograd": "autograd in the lesson that asks for gradients by hand",
    "torch-layer": "subclassing or using torch's convolution layer instead of your own",
    "held-out": "the held-out test data inside a function (the graded accuracy is measured on it)",
    "grader": "reaches into the grader's checks or nbgrader",
    "files": "reads or lists files outside the notebook",
    "environment": "reads environment variables (e.g. behaves differently while graded)",
    "shell": "shell escape or process execution",
    "magic": "an IPython magic that loads or runs code from elsewhere",
    "ipython": "IPython internals (hooks that rewrite or hide cells)",
    "threads": "threads, processes or signals",
    "monkeypatch": "replaces attributes of torch, numpy, builtins, sys or the course package",
    "ctypes": "ctypes/cffi (raw memory access)",
    "dynamic": "eval/exec/compile/__import__/importlib (hides what runs)",
    "similarity": "shares most of its code with the answer key or another learner",
}

# ------------------------------------------------------------------------ what each rule matches

_INTROSPECTION_NAMES = {
    "sys._getframe",
    "sys._current_frames",
    "sys._getframemodulename",
    "sys.settrace",
    "sys.setprofile",
    "sys.addaudithook",
    "sys.exc_info",
    "sys.last_traceback",
    "sys.last_exc",
    "inspect.stack",
    "inspect.currentframe",
    "inspect.getouterframes",
    "inspect.getinnerframes",
    "inspect.trace",
    "inspect.getframeinfo",
    "inspect.getclosurevars",
    "traceback.walk_stack",
    "traceback.walk_tb",
    "threading.settrace",
    "threading.setprofile",
}
_INTROSPECTION_PREFIXES = ("gc.",)
_INTROSPECTION_ATTRS = {
    "f_back",
    "f_locals",
    "f_globals",
    "f_builtins",
    "tb_frame",
    "gi_frame",
    "cr_frame",
    "ag_frame",
    "__globals__",
    "__closure__",
    "__subclasses__",
    "__code__",
    "__traceback__",
}

_DISPATCH_PREFIXES = (
    "torch.utils._python_dispatch",
    "torch._C",
    "torch._ops",
    "torch.overrides",
    "torch.library",
    "torch._dispatch",
    "torch._decomp",
    "torch._refs",
    "torch._prims",
    "torch._subclasses",
    "torch._higher_order_ops",
    "torch.ops",
    # the grader records the learner's ops with torch's profiler: starting or stopping one
    "torch.autograd.profiler",
    "torch.profiler",
    "torch.autograd._enable_profiler",
    "torch.autograd._disable_profiler",
    "torch.autograd._profiler",
)
_DISPATCH_ATTRS = {
    "_disable_current_modes",
    "_pop_mode",
    "_push_mode",
    "_get_current_dispatch_mode",
    "_pop_mode_temporarily",
    "TorchDispatchMode",
    "TorchFunctionMode",
    "__torch_dispatch__",
    "__torch_function__",
    "_DisableTorchDispatch",
    "_DisableFuncTorch",
    "_ExcludeDispatchKeyGuard",
    "_set_torch_function_mode",
    "_python_dispatch",
    "_DisableAutocast",
    "DisableTorchFunction",
    "DisableTorchFunctionSubclass",
    "_disabled_torch_function_impl",
}

_CONV_NAMES = {
    f"torch.nn.functional.{n}"
    for n in ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "conv_tbc")
}
_CONV_NAMES |= {
    f"torch.{n}"
    for n in (
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
        "convolution",
        "_convolution",
        "conv_tbc",
        "mkldnn_convolution",
        "cudnn_convolution",
        "miopen_convolution",
        "_convolution_mode",
    )
}
_CONV_NAMES |= {"numpy.convolve", "numpy.correlate"}
_CONV_PREFIXES = (
    "torch.nn.grad",
    "torch.nn.modules.conv",
    "numpy.fft",
    "torch.fft",
    "scipy.signal",
    "scipy.ndimage",
    "scipy.fft",
    "scipy.fftpack",
)
_CONV_LAYER = re.compile(r"^torch\.nn\.(Lazy)?Conv(Transpose)?[123]d$")
#: torch's pooling functions and layers (lesson 13 asks for them with loops).
_POOL_NAME = re.compile(
    r"^torch(\.nn\.functional|\._C\._nn)?\.(adaptive_|fractional_)?(max|avg|lp)_pool[123]d(_with_indices)?$"
    r"|^torch\.nn\.(modules\.pooling\.)?(Adaptive|Fractional)?(Max|Avg|LP)Pool[123]d$"
)
_CONV_ATTRS = {
    "conv1d",
    "conv2d",
    "conv3d",
    "convolution",
    "_convolution",
    "conv_transpose2d",
    "_conv_forward",
    "Conv2d",
    "Conv1d",
    "Conv3d",
    "ConvTranspose2d",
    "LazyConv2d",
    "fftconvolve",
    "convolve2d",
    "correlate2d",
    "rfft2",
    "fft2",
    "irfft2",
    "ifft2",
}

_UNFOLD_NAMES = {
    "torch.nn.functional.unfold",
    "torch.nn.functional.fold",
    "torch.nn.Unfold",
    "torch.nn.Fold",
    "torch.as_strided",
}
_UNFOLD_PREFIXES = ("numpy.lib.stride_tricks",)
_UNFOLD_ATTRS = {"unfold", "as_strided", "sliding_window_view", "im2col"}

_PAD_NAMES = {"torch.nn.functional.pad", "numpy.pad", "torch.constant_pad_nd"}
_PAD_PREFIXES = ("torch.nn.modules.padding",)
_PAD_LAYER = re.compile(r"^torch\.nn\.(Zero|Constant|Reflection|Replication|Circular)Pad[123]d$")

_AUTOGRAD_NAMES = {"torch.autograd.grad", "torch.autograd.backward"}
_AUTOGRAD_PREFIXES = (
    "torch.autograd.functional",
    "torch.autograd.forward_ad",
    "torch.func",
    "functorch",
    "torch.nn.grad",
)
_AUTOGRAD_ATTRS = {"backward", "vjp", "jvp", "jacrev", "jacfwd", "vmap"}

_GRADER_PREFIXES = ("convcourse.checks", "convcourse.grading", "nbgrader")
#: What the test cells call: using them is fine, rebinding them is not.
_TEST_HELPERS = {
    "convcourse.checks.check",
    "convcourse.checks.check_suite",
    "convcourse.checks.suite_cases",
    "convcourse.checks.check_answer",
    "convcourse.checks.quiz.check_answer",
}

_FILE_NAMES = {
    "open",
    "builtins.open",
    "io.open",
    "io.FileIO",
    "os.open",
    "codecs.open",
    "os.listdir",
    "os.scandir",
    "os.walk",
    "os.fwalk",
    "os.chdir",
    "os.readlink",
    "os.stat",
    "os.lstat",
    "numpy.load",
    "numpy.loadtxt",
    "numpy.genfromtxt",
    "numpy.fromfile",
    "numpy.memmap",
    "torch.load",
    "fileinput.input",
    "linecache.getline",
    "linecache.getlines",
}
_FILE_PREFIXES = (
    "glob.",
    "shutil.",
    "pickle.",
    "tarfile.",
    "zipfile.",
    "sqlite3.",
    "socket.",
    "urllib.",
    "http.",
    "requests.",
)
_FILE_ATTRS = {"read_text", "read_bytes", "write_text", "write_bytes", "iterdir", "rglob", "glob", "listdir", "scandir"}
_FILE_STRING = re.compile(
    r"(^|[/\\])\.\.([/\\]|$)|^/proc\b|^/sys/|^/etc/|^/home/|^/root\b|^~[/\w]|gradebook\.db"
    r"|nbgrader_config|/submitted/|/autograded/|/source/"
)

_ENV_NAMES = {"os.environ", "os.getenv", "os.environb", "os.putenv", "os.unsetenv"}
_ENV_STRING = re.compile(r"NBGRADER|CONVCOURSE|JPY_SESSION")

_SHELL_NAMES = {"os.system", "os.popen", "os.fork", "os.forkpty", "os.kill", "os.killpg", "os.startfile"}
_SHELL_PREFIXES = ("subprocess", "os.exec", "os.spawn", "os.posix_spawn", "pty.", "pexpect", "sh.", "pip.")
_SHELL_MAGICS = {
    "system",
    "sx",
    "sc",
    "pip",
    "conda",
    "mamba",
    "micromamba",
    "uv",
    "bash",
    "sh",
    "script",
    "perl",
    "ruby",
    "python",
    "python2",
    "python3",
    "pypy",
    "writefile",
    "file",
    "cd",
    "env",
    "set_env",
    "bookmark",
    "alias",
    "pushd",
    "popd",
    "dhist",
    "killbgscripts",
    "!",
}
_CODE_MAGICS = {
    "run",
    "load",
    "load_ext",
    "reload_ext",
    "autoreload",
    "aimport",
    "loadpy",
    "macro",
    "recall",
    "rerun",
    "config",
    "xmode",
    "autocall",
    "automagic",
    "reset",
    "reset_selective",
    "store",
}
#: Cell magics whose body is Python code, read like the rest of the cell.
_PYTHON_BODY_MAGICS = {"capture", "time", "timeit", "prun", "debug", "markdown"}
_IPYTHON_CALLS = {"run_line_magic", "run_cell_magic", "system", "getoutput", "magic"}

_THREAD_PREFIXES = (
    "threading",
    "_thread",
    "multiprocessing",
    "concurrent.futures",
    "torch.multiprocessing",
    "signal",
    "resource",
    "joblib",
    "asyncio.subprocess",
    "atexit",
)
_CTYPES_PREFIXES = ("ctypes", "_ctypes", "cffi", "mmap")
_DYNAMIC_NAMES = {
    "eval",
    "exec",
    "compile",
    "__import__",
    "builtins.eval",
    "builtins.exec",
    "builtins.compile",
    "builtins.__import__",
    "sys.modules",
    "operator.attrgetter",
    "operator.methodcaller",
}
_DYNAMIC_PREFIXES = ("importlib", "runpy", "marshal", "types.FunctionType", "types.CodeType")

#: Modules whose attributes learner code must not replace.
_PATCHED_ROOTS = (
    "torch",
    "numpy",
    "builtins",
    "convcourse",
    "sys",
    "os",
    "IPython",
    "math",
    "nbgrader",
    "inspect",
    "gc",
    "scipy",
    "ipykernel",
    "traitlets",
    "__builtins__",
    "importlib",
)


def _starts(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p.rstrip(".") or name.startswith(p if p.endswith(".") else p + ".") for p in prefixes)


def _aten_op(name: str) -> str | None:
    """``torch.ops.aten.convolution.default`` -> ``convolution`` (the operator the tripwire names)."""
    parts = name.split(".")
    return parts[3] if len(parts) > 3 and parts[:3] == ["torch", "ops", "aten"] else None


def _op_groups() -> dict[str, frozenset[str]]:
    from ..checks.core import CONVOLUTION_OPS, PAD_OPS, POOL_OPS, UNFOLD_OPS

    return {
        "convolution": CONVOLUTION_OPS,
        "unfold": UNFOLD_OPS | {"as_strided"},
        "padding": PAD_OPS,
        "pooling": POOL_OPS,
    }


# ------------------------------------------------------------------------------ lesson policy


@dataclass(frozen=True)
class LessonRules:
    """Which lesson-specific rules apply, derived from the exercise registry."""

    lesson: str
    #: op group ("convolution", "unfold", "padding", "pooling") -> exercise names (functions/classes) allowed to use it;
    #: a group absent here is allowed everywhere in the lesson.
    banned: dict[str, frozenset[str]]
    autograd: bool = False
    torch_layer: bool = False
    #: Global names of the held-out test split (none where the lesson grades no held-out accuracy).
    held_out: frozenset[str] = frozenset()

    def allowed(self, group: str, scopes: tuple[str, ...]) -> bool:
        if group not in self.banned:
            return True
        return any(scope in self.banned[group] for scope in scopes)


#: Lessons whose exercises compute gradients by hand (autograd would do it for the learner).
AUTOGRAD_LESSONS = frozenset({"11_backward"})
#: Lessons whose graded model/layer must be the learner's own Conv2d, not torch's.
TORCH_LAYER_LESSONS = frozenset({"10_conv2d_module", "12_capstone"})
#: Lessons graded on held-out data the notebook also loads: its global names. The kernel can read the data
#: (training needs the same file), so a function that touches them is flagged for review: fine in an
#: evaluation helper, not in the code that builds or trains the model.
HELD_OUT = {"12_capstone": frozenset({"x_test", "y_test"})}
_DATA_LOADERS = {"convcourse.data.digits_split", "convcourse.data.load_digits", "convcourse.data.stratified_split"}


def lesson_rules(lesson: str) -> LessonRules:
    """The rules for ``lesson`` from the checks' own registry (what each exercise bans)."""
    from ..checks import exercises  # noqa: F401  (registers every lesson's exercises)
    from ..checks.core import CONVOLUTION_OPS, PAD_OPS, POOL_OPS, REGISTRY, UNFOLD_OPS

    mine = [e for e in REGISTRY.values() if e.lesson == lesson]
    banned: dict[str, frozenset[str]] = {}
    groups = (("convolution", CONVOLUTION_OPS), ("unfold", UNFOLD_OPS), ("padding", PAD_OPS), ("pooling", POOL_OPS))
    for group, ops in groups:
        if any(e.banned & ops for e in mine):
            banned[group] = frozenset(e.name for e in mine if not e.banned & ops)
    return LessonRules(
        lesson, banned, lesson in AUTOGRAD_LESSONS, lesson in TORCH_LAYER_LESSONS, HELD_OUT.get(lesson, frozenset())
    )


# ------------------------------------------------------------------------------------ findings


@dataclass(frozen=True)
class Finding:
    learner: str
    rule: str
    finding: str
    cell: int | None  # 1-based position in the submitted notebook (None: the whole file)
    line: int | None  # 1-based line in that cell
    snippet: str


@dataclass(frozen=True)
class Similarity:
    first: str  # a learner id, or ANSWER_KEY
    second: str
    score: float  # share of the smaller side's own code that the other side contains
    shared: int  # characters of normalised code in common


_DEFAULT_ALIASES = {
    "torch": "torch",
    "np": "numpy",
    "numpy": "numpy",
    "F": "torch.nn.functional",
    "nn": "torch.nn",
    "open": "open",
    "eval": "eval",
    "exec": "exec",
    "compile": "compile",
    "__import__": "__import__",
    "__builtins__": "builtins",
    "getattr": "getattr",
    "setattr": "setattr",
    "delattr": "delattr",
    "vars": "vars",
    "globals": "globals",
    "get_ipython": "get_ipython",
}


def collect_aliases(sources: Iterable[str], aliases: dict[str, str] | None = None) -> dict[str, str]:
    """Local name -> dotted module path, from every import in ``sources`` (already plain Python)."""
    aliases = dict(_DEFAULT_ALIASES if aliases is None else aliases)
    for source in sources:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        aliases[a.asname] = a.name
                    else:
                        root = a.name.split(".")[0]
                        aliases[root] = root
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    if a.name != "*":
                        aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


@lru_cache(maxsize=4096)
def to_python(source: str) -> str:
    """A cell's source as the plain Python IPython would run (magics and ``!`` become calls)."""
    return _transformer().transform_cell(source)


@lru_cache(maxsize=1)
def _transformer():
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


class _CellVisitor(ast.NodeVisitor):
    """Collects (rule, message, line) for one cell's code."""

    def __init__(self, rules: LessonRules, aliases: dict[str, str], line_offset: int = 0):
        self.rules = rules
        self.aliases = aliases
        self.offset = line_offset
        self.scopes: list[str] = []
        self.hits: list[tuple[str, str, int]] = []
        self.nested: list[tuple[str, int]] = []  # (python source, line offset) of cell-magic bodies

    # ---- helpers
    def hit(self, rule: str, message: str, node: ast.AST) -> None:
        self.hits.append((rule, message, self.offset + getattr(node, "lineno", 1)))

    def resolve(self, node: ast.AST) -> str | None:
        """The dotted name of a Name/Attribute chain through the imports (``F.conv2d`` ->
        ``torch.nn.functional.conv2d``), also through ``getattr(x, "name")`` and ``x.__dict__["name"]``."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            return f"{base}.{node.attr}" if base else None
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            base = self.resolve(node.args[0])
            return f"{base}.{node.args[1].value}" if base else None
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            inner = node.value
            if isinstance(inner, ast.Attribute) and inner.attr == "__dict__":
                base = self.resolve(inner.value)
            elif (
                isinstance(inner, ast.Call)
                and isinstance(inner.func, ast.Name)
                and inner.func.id == "vars"
                and inner.args
            ):
                base = self.resolve(inner.args[0])
            else:
                base = None
            return f"{base}.{node.slice.value}" if base else None
        return None

    def group_on(self, group: str) -> bool:
        return not self.rules.allowed(group, tuple(self.scopes))

    def check_name(self, name: str, node: ast.AST) -> None:
        """Findings for a reference to the dotted ``name``."""
        if name in _INTROSPECTION_NAMES or _starts(name, _INTROSPECTION_PREFIXES):
            self.hit("introspection", f"{name} (frame/gc introspection)", node)
        if self.group_on("convolution") and self._conv_like(name):
            self.hit("convolution", f"{name} (a convolution this lesson asks you to write yourself)", node)
        elif _starts(name, _DISPATCH_PREFIXES) or (
            name.startswith("torch.")
            and any(part.startswith("_") and not part.startswith("__") for part in name.split(".")[1:])
        ):
            self.hit("dispatch", f"{name} (torch internals)", node)
        if self.group_on("pooling") and (_POOL_NAME.match(name) or _aten_op(name) in _op_groups()["pooling"]):
            self.hit("pooling", f"{name} (pooling this lesson asks you to write yourself)", node)
        if self.group_on("unfold") and (
            name in _UNFOLD_NAMES or _starts(name, _UNFOLD_PREFIXES) or _aten_op(name) in _op_groups()["unfold"]
        ):
            self.hit("unfold", f"{name} (sliding windows by library; this lesson asks for loops)", node)
        if self.group_on("padding") and (
            name in _PAD_NAMES
            or _starts(name, _PAD_PREFIXES)
            or _PAD_LAYER.match(name)
            or _aten_op(name) in _op_groups()["padding"]
        ):
            self.hit("padding", f"{name} (library padding; this lesson asks you to write it)", node)
        if self.rules.autograd and (name in _AUTOGRAD_NAMES or _starts(name, _AUTOGRAD_PREFIXES)):
            self.hit("autograd", f"{name} (autograd; this lesson asks for gradients by hand)", node)
        if self.rules.torch_layer and _CONV_LAYER.match(name):
            self.hit("torch-layer", f"{name} (torch's layer; this lesson grades your own Conv2d)", node)
        if self.rules.held_out and self.scopes and name in _DATA_LOADERS:
            self.hit("held-out", f"{name} inside {self.scopes[-1]} (loads the held-out test digits too)", node)
        if _starts(name, _GRADER_PREFIXES) and not (name in _TEST_HELPERS and isinstance(node, ast.Name)):
            self.hit("grader", f"{name} (the grader's own code)", node)
        if name in _FILE_NAMES or _starts(name, _FILE_PREFIXES):
            self.hit("files", f"{name} (file system access)", node)
        if name in _ENV_NAMES:
            self.hit("environment", f"{name} (environment variables)", node)
        if name in _SHELL_NAMES or _starts(name, _SHELL_PREFIXES):
            self.hit("shell", f"{name} (runs other programs)", node)
        if _starts(name, _THREAD_PREFIXES):
            self.hit("threads", f"{name} (threads, processes, signals or limits)", node)
        if _starts(name, _CTYPES_PREFIXES):
            self.hit("ctypes", f"{name} (raw memory access)", node)
        if name in _DYNAMIC_NAMES or _starts(name, _DYNAMIC_PREFIXES):
            self.hit("dynamic", f"{name} (runs code the report cannot read)", node)

    @staticmethod
    def _conv_like(name: str) -> bool:
        return (
            name in _CONV_NAMES
            or _starts(name, _CONV_PREFIXES)
            or bool(_CONV_LAYER.match(name))
            or _aten_op(name) in _op_groups()["convolution"]
        )

    # ---- visitors
    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self.check_name(a.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and not node.level:
            self.check_name(node.module, node)
            for a in node.names:
                if a.name != "*":
                    self.check_name(f"{node.module}.{a.name}", node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in self.rules.held_out and self.scopes and isinstance(node.ctx, ast.Load):
            self.hit("held-out", f"{node.id} inside {self.scopes[-1]} (the held-out test split)", node)
        if isinstance(node.ctx, ast.Store) and _starts(self.aliases.get(node.id, ""), _GRADER_PREFIXES):
            self.hit("grader", f"rebinds {node.id}, a name the tests use", node)
            return
        if node.id in self.aliases and node.id not in (
            "torch",
            "np",
            "numpy",
            "F",
            "nn",
            "getattr",
            "vars",
            "get_ipython",
            "__builtins__",
        ):
            name = self.aliases[node.id]
            if "." in name or name in _DYNAMIC_NAMES or name == "open":
                self.check_name(name, node)
        elif node.id == "__builtins__":
            self.hit("monkeypatch", "__builtins__ (the builtins themselves)", node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = self.resolve(node)
        if name is not None:
            self.check_name(name, node)
        else:
            self._check_attr(node.attr, node)
        if node.attr in _INTROSPECTION_ATTRS:
            self.hit("introspection", f".{node.attr} (frames, closures or subclasses)", node)
        if node.attr in _DISPATCH_ATTRS:
            self.hit("dispatch", f"{node.attr} (torch dispatch internals)", node)
        if node.attr in _FILE_ATTRS:
            self.hit("files", f".{node.attr}() (file system access)", node)
        if (
            isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "get_ipython"
            and node.attr not in _IPYTHON_CALLS
        ):
            self.hit("ipython", f"get_ipython().{node.attr} (IPython internals)", node)
        if name is None:
            self.generic_visit(node)

    def _check_attr(self, attr: str, node: ast.Attribute) -> None:
        """An attribute of something the report cannot resolve (``x.unfold``, ``m.conv2d``)."""
        if self.group_on("convolution") and attr in _CONV_ATTRS:
            self.hit("convolution", f".{attr} (a convolution this lesson asks you to write yourself)", node)
        if self.group_on("unfold") and attr in _UNFOLD_ATTRS:
            self.hit("unfold", f".{attr}() (sliding windows by library; this lesson asks for loops)", node)
        if self.rules.autograd and attr in _AUTOGRAD_ATTRS:
            self.hit("autograd", f".{attr}() (autograd; this lesson asks for gradients by hand)", node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        name = self.resolve(node)
        if name is not None:
            self.check_name(name, node)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "getattr" and len(node.args) >= 2:
            name = self.resolve(node)
            if name is not None:
                self.check_name(name, node)
        if (
            isinstance(func, ast.Name)
            and func.id == "getattr"
            and len(node.args) >= 2
            and not isinstance(node.args[1], ast.Constant)
        ):
            target = self.resolve(node.args[0])
            if target and _starts(target, _PATCHED_ROOTS + _GRADER_PREFIXES):
                self.hit("dynamic", f"getattr({target}, <computed name>) (an attribute the report cannot name)", node)
        if isinstance(func, ast.Attribute) and func.attr in ("__getattribute__", "__getattr__"):
            target = self.resolve(func.value)
            if target and _starts(target, _PATCHED_ROOTS + _GRADER_PREFIXES):
                self.hit("dynamic", f"{target}.{func.attr}(...) (an attribute the report cannot name)", node)
        if isinstance(func, ast.Name) and func.id in ("setattr", "delattr") and node.args:
            target = self.resolve(node.args[0])
            if target and _starts(target, _PATCHED_ROOTS):
                self.hit("monkeypatch", f"{func.id}({target}, ...)", node)
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Call)
            and isinstance(func.value.func, ast.Name)
            and func.value.func.id == "get_ipython"
        ):
            self._ipython_call(func.attr, node)
        self.generic_visit(node)

    def _ipython_call(self, method: str, node: ast.Call) -> None:
        args = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
        if method in ("system", "getoutput"):
            self.hit("shell", f"!{(args[0] or '')[:60] if args else ''} (shell escape)", node)
        elif method in ("run_line_magic", "run_cell_magic", "magic") and args and isinstance(args[0], str):
            magic = args[0].split()[0] if args[0].split() else ""
            line = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            prefix = "%%" if method == "run_cell_magic" else "%"
            if magic in _SHELL_MAGICS:
                self.hit("shell", f"{prefix}{magic} {line}".strip()[:70] + " (shell escape)", node)
            elif magic in _CODE_MAGICS:
                self.hit("magic", f"{prefix}{magic} {line}".strip()[:70] + " (loads or runs code from elsewhere)", node)
            if (
                method == "run_cell_magic"
                and magic in _PYTHON_BODY_MAGICS
                and len(args) > 2
                and isinstance(args[2], str)
            ):
                self.nested.append((args[2], self.offset + node.lineno))
            elif method == "run_line_magic" and magic in ("time", "timeit", "prun", "debug") and line:
                self.nested.append((line, self.offset + node.lineno - 1))

    def _patched_target(self, target: ast.AST, node: ast.AST) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._patched_target(element, node)
            return
        if isinstance(target, ast.Attribute):
            if target.attr in ("__class__", "__code__", "__dict__", "__globals__", "__defaults__", "__kwdefaults__"):
                self.hit("monkeypatch", f"assigns .{target.attr}", node)
                return
            base = self.resolve(target.value)
            if base and _starts(base, _PATCHED_ROOTS):
                self.hit("monkeypatch", f"replaces {base}.{target.attr}", node)
            elif (
                isinstance(target.value, ast.Call)
                and isinstance(target.value.func, ast.Name)
                and target.value.func.id == "get_ipython"
            ):
                self.hit("ipython", f"replaces get_ipython().{target.attr}", node)
        elif isinstance(target, ast.Subscript):
            base = (
                self.resolve(target.value)
                if not isinstance(target.value, ast.Attribute) or target.value.attr != "__dict__"
                else self.resolve(target.value.value)
            )
            if base and (_starts(base, _PATCHED_ROOTS) or base.endswith("sys.modules")):
                self.hit("monkeypatch", f"replaces an entry of {base}", node)
        elif isinstance(target, ast.Name) and target.id in ("__builtins__",):
            self.hit("monkeypatch", "rebinds __builtins__", node)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._patched_target(target, node)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._patched_target(node.target, node)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._patched_target(node.target, node)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._patched_target(target, node)
        self.generic_visit(node)

    def _scoped(self, node, name: str) -> None:
        self.scopes.append(name)
        try:
            self.generic_visit(node)
        finally:
            self.scopes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if node.name in ("__torch_dispatch__", "__torch_function__"):
            self.hit("dispatch", f"defines {node.name} (intercepts torch's dispatch)", node)
        self._scoped(node, node.name)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for base in node.bases:
            name = self.resolve(base) or ""
            if _CONV_LAYER.match(name) or _starts(name, ("torch.nn.modules.conv",)) or name.endswith("_ConvNd"):
                self.hit("torch-layer", f"class {node.name}({ast.unparse(base)}) subclasses torch's layer", node)
            if (
                name.endswith(("TorchDispatchMode", "TorchFunctionMode"))
                or _starts(name, ("torch.Tensor",))
                or name == "torch.Tensor"
            ):
                self.hit("dispatch", f"class {node.name}({ast.unparse(base)}) hooks into torch's dispatch", node)
        self._scoped(node, node.name)

    def visit_Constant(self, node: ast.Constant) -> None:
        if (
            isinstance(node.value, str)
            and self.group_on("convolution")
            and (node.value in _CONV_ATTRS or node.value in _op_groups()["convolution"])
        ):
            self.hit("convolution", f"{node.value!r} (the name of torch's convolution, e.g. for getattr)", node)
        if isinstance(node.value, str) and _starts(node.value, _GRADER_PREFIXES):
            self.hit("grader", f"{node.value[:60]!r} (names the grader's modules)", node)
        if isinstance(node.value, str) and len(node.value) < 400:
            if _FILE_STRING.search(node.value):
                self.hit("files", f"path {node.value[:60]!r} (outside the notebook's folder)", node)
            if _ENV_STRING.search(node.value):
                self.hit("environment", f"{node.value[:60]!r} (a grading or course variable)", node)


def _cell_findings(source: str, rules: LessonRules, aliases: dict[str, str]) -> list[tuple[str, str, int]]:
    """(rule, message, line) for one cell; a cell that does not parse gives one "syntax" finding."""
    try:
        python = to_python(source)
    except Exception as error:  # IPython's transformer rejects some broken input itself  # noqa: BLE001
        return [("syntax", f"IPython cannot read this cell ({type(error).__name__}: {error})"[:200], 1)]
    pending = [(python, 0)]
    hits: list[tuple[str, str, int]] = []
    depth = 0
    while pending and depth < 20:
        code, offset = pending.pop()
        depth += 1
        try:
            tree = ast.parse(code)
        except SyntaxError as error:
            hits.append(("syntax", f"does not parse: {error.msg}", offset + (error.lineno or 1)))
            continue
        except (ValueError, RecursionError, MemoryError) as error:  # null bytes, absurd nesting
            hits.append(("syntax", f"cannot be read ({type(error).__name__})", offset + 1))
            continue
        visitor = _CellVisitor(rules, collect_aliases([code], aliases) if offset else aliases, offset)
        try:
            visitor.visit(tree)
        except RecursionError:
            hits.append(("syntax", "nested too deeply to read", offset + 1))
        hits.extend(visitor.hits)
        pending.extend((to_python(body), line) for body, line in visitor.nested)
    return hits


# --------------------------------------------------------------------------- notebooks and cells


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """A notebook's cells and metadata (v4 read as plain JSON: no schema validation, which is slow and
    would reject files nbgrader still grades; other versions converted by nbformat)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ValueError("no list of cells")
    if data.get("nbformat") != 4:
        return nbformat.read(path, as_version=4)
    nb = nbformat.from_dict(data)
    for cell in nb.cells:
        source = cell.get("source", "")
        cell["source"] = "".join(map(str, source)) if isinstance(source, list) else str(source)
        cell.setdefault("metadata", nbformat.NotebookNode())
        cell.setdefault("cell_type", "raw")
    return nb


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _is_locked(meta: dict) -> bool:
    return bool(meta.get("locked") or (meta.get("grade") and not meta.get("solution")))


@dataclass
class LessonSource:
    """What the course itself provides for a lesson: locked cells, its own code, the answer key."""

    course: CourseRoot
    lesson: str

    @cached_property
    def notebook(self) -> nbformat.NotebookNode:
        path = self.course.root / "source" / self.lesson / f"{self.lesson}.ipynb"
        if not path.exists():
            paths = sorted((self.course.root / "source" / self.lesson).glob("*.ipynb"))
            if not paths:
                raise CourseError(f"no notebook under {path.parent}")
            path = paths[0]
        return read_notebook(path)

    @cached_property
    def locked_ids(self) -> set[str]:
        """grade_ids of cells nbgrader restores from the source (locked and test cells)."""
        return {m["grade_id"] for m in map(_meta, self.notebook.cells) if m.get("grade_id") and _is_locked(m)}

    @cached_property
    def course_cells(self) -> list[str]:
        """Source of the lesson's own code cells that are not solutions (demos, widgets, setup)."""
        return [c.source for c in self.notebook.cells if c.cell_type == "code" and not _meta(c).get("solution")]

    @cached_property
    def stubs(self) -> list[str]:
        """The learner copy's solution cells: the source with each solution region replaced as nbgrader does."""
        pattern = re.compile(r"^[ \t]*### BEGIN SOLUTION.*?^[ \t]*### END SOLUTION[^\n]*\n?", re.S | re.M)
        return [
            pattern.sub("# YOUR CODE HERE\nraise NotImplementedError()\n", c.source)
            for c in self.notebook.cells
            if c.cell_type == "code" and _meta(c).get("solution")
        ]

    @cached_property
    def answer_key(self) -> str:
        """The public answer key's learner-editable code (solutions/<lesson>, else the source's solutions)."""
        path = REPO / "solutions" / self.lesson / f"{self.lesson}.ipynb"
        if path.exists():
            nb = read_notebook(path)
            cells = [c.source for c in nb.cells if c.cell_type == "code" and _meta(c).get("solution")]
        else:
            cells = [
                re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION.*\n?", "", c.source, flags=re.M)
                for c in self.notebook.cells
                if c.cell_type == "code" and _meta(c).get("solution")
            ]
        return "\n\n".join(cells)

    @cached_property
    def aliases(self) -> dict[str, str]:
        return collect_aliases(_safe_python(c.source) for c in self.notebook.cells if c.cell_type == "code")

    @cached_property
    def rules(self) -> LessonRules:
        return lesson_rules(self.lesson)

    @cached_property
    def baseline(self) -> set[tuple[str, str]]:
        """(rule, line) pairs the lesson's own non-solution cells contain: not reported there."""
        found = set()
        for source in self.course_cells:
            lines = source.splitlines()
            for rule, _, line in _cell_findings(source, self.rules, self.aliases):
                found.add((rule, lines[line - 1].strip() if 0 < line <= len(lines) else ""))
        return found


def _safe_python(source: str) -> str:
    try:
        return to_python(source)
    except Exception:  # noqa: BLE001 - an unreadable cell has no imports to learn from
        return ""


def editable_cells(nb: nbformat.NotebookNode, source: LessonSource) -> Iterator[tuple[int, nbformat.NotebookNode]]:
    """(1-based position, cell) of the code cells the learner can change (nbgrader keeps them as submitted)."""
    for index, cell in enumerate(nb.cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        grade_id = _meta(cell).get("grade_id")
        if grade_id and grade_id in source.locked_ids:
            continue  # restored from the source before grading
        yield index, cell


def _is_solution(cell, source: LessonSource) -> bool:
    grade_id = _meta(cell).get("grade_id")
    return bool(grade_id) and any(
        _meta(c).get("grade_id") == grade_id and _meta(c).get("solution") for c in source.notebook.cells
    )


def notebook_findings(learner: str, nb: nbformat.NotebookNode, source: LessonSource) -> list[Finding]:
    """Every finding in one learner's notebook, in cell and line order, one per (cell, line, rule)."""
    cells = list(editable_cells(nb, source))
    course_cells = set(source.course_cells)
    aliases = collect_aliases((_safe_python(c.source) for _, c in cells), source.aliases)
    merged: dict[tuple[int, int, str], list[str]] = {}
    snippets: dict[tuple[int, int, str], str] = {}
    for index, cell in cells:
        text = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        if text in course_cells:
            continue  # the lesson's own cell, unchanged
        solution = _is_solution(cell, source)
        lines = text.splitlines()
        for rule, message, line in _cell_findings(text, source.rules, aliases):
            line = max(1, min(line, len(lines) or 1))
            snippet = lines[line - 1].strip() if lines else ""
            if not solution and (rule, snippet) in source.baseline:
                continue
            messages = merged.setdefault((index, line, rule), [])
            snippets[(index, line, rule)] = snippet
            if message not in messages:
                messages.append(message)
    findings = [
        Finding(learner, rule, "; ".join(merged[(index, line, rule)]), index, line, snippets[(index, line, rule)][:120])
        for index, line, rule in sorted(merged, key=lambda k: (k[0], k[1], list(RULES).index(k[2])))
    ]
    return findings


# ----------------------------------------------------------------------------------- similarity


def learner_code(nb: nbformat.NotebookNode, source: LessonSource) -> str:
    """The code a learner wrote: editable code cells that differ from the lesson's own, minus quiz answers."""
    course_cells = set(source.course_cells) | set(source.stubs)
    parts = []
    for _, cell in editable_cells(nb, source):
        if cell.get("metadata", {}).get("convcourse", {}).get("quiz"):
            continue
        if cell.source not in course_cells:
            parts.append(cell.source)
    return "\n\n".join(parts)


def _fingerprint(name: str, code: str, boilerplate):
    from copydetect import CodeFingerprint

    return CodeFingerprint(
        f"{name}.py", NOISE, GUARANTEE - NOISE + 1, boilerplate=boilerplate, fp=io.StringIO(code), language="python"
    )


def similarities(
    codes: dict[str, str], key: str, boilerplate_code: str, threshold: float = DEFAULT_THRESHOLD
) -> list[Similarity]:
    """Pairs (learner vs answer key, learner vs learner) sharing at least ``threshold`` of the smaller
    side's code and at least MIN_SHARED characters of normalised code, most similar first."""
    import logging

    import numpy as np
    from copydetect import compare_files

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # copydetect's empty-file warnings
    boilerplate = np.array(sorted(_fingerprint("boilerplate", boilerplate_code, []).hashes), dtype=np.int64)
    prints = {
        name: _fingerprint(f"learner{i}", code, boilerplate) for i, (name, code) in enumerate(sorted(codes.items()))
    }
    if key.strip():
        prints[ANSWER_KEY] = _fingerprint("answer_key", key, boilerplate)
    names = [ANSWER_KEY] * (ANSWER_KEY in prints) + sorted(codes)
    pairs = []
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            a, b = prints[first], prints[second]
            if not a.token_coverage or not b.token_coverage:
                continue
            shared, (sim_a, sim_b), _ = compare_files(a, b)
            score = float(max(sim_a, sim_b))
            if score >= threshold and shared >= MIN_SHARED:
                pairs.append(Similarity(first, second, round(score, 3), int(shared)))
    return sorted(pairs, key=lambda p: (-p.score, p.first, p.second))


# -------------------------------------------------------------------------------------- report


@dataclass
class IntegrityReport:
    lesson: str
    learners: list[str]
    findings: list[Finding] = field(default_factory=list)
    pairs: list[Similarity] = field(default_factory=list)
    threshold: float = DEFAULT_THRESHOLD

    def counts(self) -> dict[str, int]:
        """Per learner: findings plus similarity flags that name them (0 for a clean submission)."""
        counts = dict.fromkeys(self.learners, 0)
        for f in self.findings:
            counts[f.learner] = counts.get(f.learner, 0) + 1
        for p in self.pairs:
            for name in (p.first, p.second):
                if name in counts:
                    counts[name] += 1
        return counts


def submissions(course: CourseRoot, lesson: str) -> dict[str, Path]:
    """learner id -> submitted notebook of ``lesson`` (submitted/<learner>/<lesson>/<lesson>.ipynb)."""
    found = {}
    for folder in sorted((course.root / "submitted").glob(f"*/{lesson}")):
        if not folder.is_dir():
            continue
        path = folder / f"{lesson}.ipynb"
        if not path.is_file():
            candidates = sorted(folder.glob("*.ipynb"))
            if not candidates:
                continue
            path = candidates[0]
        found[folder.parent.name] = path
    return found


def integrity_report(
    course: CourseRoot, lesson: str, threshold: float = DEFAULT_THRESHOLD, similarity: bool = True
) -> IntegrityReport:
    """Read every submission of ``lesson`` and report findings and similar pairs (nothing is run)."""
    course.check_lesson(lesson)
    subs = submissions(course, lesson)
    if not subs:
        raise CourseError(
            f"no submissions of {lesson} under {course.root / 'submitted'} "
            f"(collect them first: convcourse collect {lesson} ...)"
        )
    source = LessonSource(course, lesson)
    report = IntegrityReport(lesson, sorted(subs), threshold=threshold)
    codes: dict[str, str] = {}
    for learner, path in sorted(subs.items()):
        try:
            nb = read_notebook(path)
        except Exception as error:  # noqa: BLE001 - any unreadable file is reported, not fatal
            report.findings.append(
                Finding(learner, "unreadable", f"not a readable notebook ({type(error).__name__})", None, None, "")
            )
            continue
        report.findings.extend(notebook_findings(learner, nb, source))
        codes[learner] = learner_code(nb, source)
    if similarity:
        boilerplate = "\n\n".join(source.course_cells + source.stubs)
        for pair in similarities(codes, source.answer_key, boilerplate, threshold):
            report.pairs.append(pair)
    return report


def _pair_finding(pair: Similarity, other: str) -> str:
    other = "the answer key" if other == ANSWER_KEY else other
    return f"{100 * pair.score:.0f}% of the code in common with {other} ({pair.shared} characters)"


def write_csv(report: IntegrityReport, path: Path) -> Path:
    """One row per finding and per flagged pair (learner, finding, rule, cell, line, snippet)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["learner", "finding", "rule", "cell", "line", "snippet"])
        for f in report.findings:
            writer.writerow(
                [
                    f.learner,
                    f.finding,
                    f.rule,
                    "" if f.cell is None else f.cell,
                    "" if f.line is None else f.line,
                    f.snippet,
                ]
            )
        for p in report.pairs:  # one row per learner in the pair
            for learner, other in ((p.first, p.second), (p.second, p.first)):
                if learner != ANSWER_KEY:
                    writer.writerow(
                        [learner, _pair_finding(p, other), "similarity", "", "", f"similarity={p.score:.3f}"]
                    )
    return path


def format_report(report: IntegrityReport, width: int = 110) -> str:
    """A readable terminal report: per learner the count, then each finding with cell:line and code."""
    counts = report.counts()
    name_w = max([len("learner")] + [len(n) for n in report.learners])
    lines = [
        f"integrity report for {report.lesson}: {len(report.learners)} submission(s), "
        f"{sum(1 for n in counts.values() if n)} flagged for review (nothing is graded from this)",
        "",
        f"{'learner':<{name_w}}  {'flags':>5}  rules",
    ]
    by_learner: dict[str, list[Finding]] = {}
    for f in report.findings:
        by_learner.setdefault(f.learner, []).append(f)
    for learner in report.learners:
        rules = sorted(
            {f.rule for f in by_learner.get(learner, [])}
            | {"similarity" for p in report.pairs if learner in (p.first, p.second)}
        )
        lines.append(f"{learner:<{name_w}}  {counts[learner] or '-':>5}  {', '.join(rules)}".rstrip())
    if report.findings:
        lines += ["", "findings (cell = position in the submitted notebook, line = line in that cell):"]
        for learner in report.learners:
            for f in by_learner.get(learner, []):
                where = "file" if f.cell is None else f"cell {f.cell}, line {f.line}"
                text = f"  {learner}: {where}: [{f.rule}] {f.finding}"
                lines.append(text[:width])
                if f.snippet:
                    lines.append(f"      {f.snippet}"[:width])
    lines.append("")
    if report.pairs:
        lines.append(f"similar code (at least {100 * report.threshold:.0f}% in common; review, do not assume):")
        for p in report.pairs:
            lines.append(f"  {p.first} ~ {p.second}: {100 * p.score:.0f}% ({p.shared} characters of normalised code)")
    else:
        lines.append(f"similar code: no pair at or above {100 * report.threshold:.0f}% in common")
    return "\n".join(lines)
