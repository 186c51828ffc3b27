"""The instructors' integrity report: static findings with cell and line, similarity, CLI and summary.

Everything here reads notebooks (no kernel is started), so these tests are fast: submissions are real
learner notebooks (the released copies with cells edited or added) in temporary course folders.
"""

from __future__ import annotations

import copy
import csv
import textwrap

import nbformat
import pytest

from convcourse import cli
from convcourse.instructor.course import CourseRoot
from convcourse.instructor.integrity import (
    ANSWER_KEY,
    LessonSource,
    format_report,
    integrity_report,
    notebook_findings,
    read_notebook,
)

from adversarial.submissions import HONEST, SUBMISSIONS
from course import REPO, make_course

L01 = "01_sliding_window"


def released(lesson: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO / "notebooks" / lesson / f"{lesson}.ipynb", as_version=4)


def key(lesson: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)


def solution_index(nb, grade_id: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def with_cell(lesson: str, grade_id: str, code: str, base=None) -> tuple[nbformat.NotebookNode, int]:
    """The answer key (or ``base``) with a new code cell right after the ``grade_id`` solution cell;
    returns the notebook and the new cell's 1-based position."""
    nb = copy.deepcopy(base if base is not None else key(lesson))
    index = solution_index(nb, grade_id) + 1
    nb.cells.insert(index, nbformat.v4.new_code_cell(textwrap.dedent(code).strip("\n")))
    return nb, index + 1


def with_solution(lesson: str, grade_id: str, code: str, base=None) -> nbformat.NotebookNode:
    nb = copy.deepcopy(base if base is not None else released(lesson))
    nb.cells[solution_index(nb, grade_id)].source = textwrap.dedent(code).strip("\n")
    return nb


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A course root with every lesson's source (findings need only the source, no gradebook)."""
    return CourseRoot(make_course(tmp_path_factory.mktemp("integrity"), None).root)


def findings(root, lesson, nb):
    return [(f.rule, f.cell, f.line) for f in notebook_findings("learner", nb, LessonSource(root, lesson))]


# Each construct sits on line 3 of a cell the learner added after the exercise (two harmless lines first).
CONSTRUCTS = [
    # frame and gc introspection
    (L01, "introspection", "import sys\nexpected = sys._getframe(1).f_locals"),
    (L01, "introspection", "import inspect as ins\nframes = ins.stack()"),
    (L01, "introspection", "import inspect\nf = inspect.currentframe().f_back"),
    (L01, "introspection", "from inspect import getouterframes as outer\nouter(None)"),
    (L01, "introspection", "import gc\nobjs = gc.get_objects()"),
    (L01, "introspection", "from gc import get_referrers\nget_referrers(x)"),
    (L01, "introspection", "try:\n    1 / 0\nexcept Exception as e: f = e.__traceback__.tb_frame"),
    # dispatch internals
    (L01, "dispatch", "import torch.utils._python_dispatch as pd\nwith pd._disable_current_modes(): pass"),
    (L01, "dispatch", "from torch.utils._python_dispatch import _disable_current_modes\n_disable_current_modes()"),
    (L01, "dispatch", "import torch\ntorch.autograd._disable_profiler_legacy()"),
    (L01, "dispatch", "import torch\nwith torch.profiler.profile(): pass"),
    (L01, "dispatch", "a = 1\nguard = torch._C._DisableTorchDispatch()"),
    (L01, "dispatch", "from torch.utils._python_dispatch import _pop_mode\n_pop_mode()"),
    (
        L01,
        "dispatch",
        "from torch.utils._python_dispatch import TorchDispatchMode\nclass Quiet(TorchDispatchMode): pass",
    ),
    (L01, "dispatch", "import torch.overrides\nclass Quiet(torch.overrides.TorchFunctionMode): pass"),
    # other routes to torch's convolution in a loop lesson
    (
        L01,
        "convolution",
        "x = torch.zeros(1, 1, 3, 3)\ny = torch.ops.aten.convolution(x, x, None, [1], [0], [1], False, [0], 1)",
    ),
    (L01, "convolution", "a = 1\nconv = getattr(torch.ops.aten, 'conv2d')"),
    (L01, "convolution", "a = 1\nconv = F.__dict__['conv2d']"),
    (L01, "convolution", "a = 1\nfrom torch.nn.functional import conv2d as c"),
    (L01, "convolution", "a = 1\nout = torch.conv2d(x, w)"),
    (L01, "convolution", "a = 1\nspectrum = np.fft.fft2(x)"),
    (L01, "convolution", "a = 1\nspectrum = torch.fft.rfft2(x)"),
    (L01, "convolution", "import scipy.signal\nout = scipy.signal.correlate2d(a, b, mode='valid')"),
    (L01, "convolution", "from scipy import ndimage\nout = ndimage.correlate(a, b)"),
    (L01, "unfold", "a = 1\npatches = x.unfold(0, 3, 1).unfold(1, 3, 1)"),
    (L01, "unfold", "a = 1\nwin = np.lib.stride_tricks.sliding_window_view(a, (3, 3))"),
    (L01, "unfold", "a = 1\ncols = F.unfold(x, 3)"),
    # subclassing torch layers
    ("10_conv2d_module", "torch-layer", "a = 1\nclass Conv2d(nn.Conv2d): pass"),
    ("12_capstone", "torch-layer", "a = 1\nclass Layer(torch.nn.Conv2d): pass"),
    ("12_capstone", "torch-layer", "a = 1\nlayer = nn.Conv2d(1, 2, 3)"),
    # the capstone's held-out digits, inside code that could train on them
    ("12_capstone", "held-out", "def train_more(model):\n    return model(x_test)"),
    ("12_capstone", "held-out", "def train_on_everything():\n    return digits_split()"),
    # reading files outside the notebook
    (L01, "files", "a = 1\ntext = open('../../source/01_sliding_window/01_sliding_window.ipynb').read()"),
    (L01, "files", "import pathlib\ndata = pathlib.Path('notes.txt').read_text()"),
    (L01, "files", "import os\nnames = os.listdir('.')"),
    (L01, "files", "import os\nfor top, dirs, files in os.walk('/'): pass"),
    (L01, "files", "import glob\nnames = glob.glob('*.ipynb')"),
    (L01, "files", "a = 1\npath = '/proc/1/cmdline'"),
    (L01, "environment", "import os\ngraded = os.environ.get('NBGRADER_EXECUTION')"),
    # shell escapes and processes
    (L01, "shell", "a = 1\n!ls -la"),
    (L01, "shell", "a = 1\n%pip install numpy"),
    (L01, "shell", "a = 1\n%system ls"),
    (L01, "shell", "a = 1\nfiles = !ls"),
    (L01, "shell", "import subprocess\nsubprocess.run(['ls'])"),
    (L01, "shell", "import os\nos.system('ls')"),
    (L01, "shell", "import os\nos.popen('ls')"),
    (L01, "threads", "import threading\nthreading.Thread(target=print).start()"),
    (L01, "threads", "a = 1\nimport multiprocessing"),
    (L01, "threads", "from concurrent.futures import ThreadPoolExecutor\nThreadPoolExecutor()"),
    # monkeypatching
    (L01, "monkeypatch", "a = 1\ntorch.allclose = lambda *a, **k: True"),
    (L01, "monkeypatch", "a = 1\nnp.testing.assert_allclose = print"),
    (L01, "monkeypatch", "import builtins\nbuiltins.isinstance = lambda a, b: True"),
    (L01, "monkeypatch", "a = 1\nsetattr(torch.Tensor, 'allclose', print)"),
    (L01, "monkeypatch", "import convcourse\nconvcourse.checks = None"),
    (L01, "ctypes", "a = 1\nimport ctypes"),
    (L01, "ctypes", "import ctypes as c\nc.memmove(0, 0, 0)"),
    (L01, "dynamic", "a = 1\nexec('x = 1')"),
    (L01, "grader", "a = 1\nfrom convcourse.checks import REGISTRY"),
    (L01, "ipython", "a = 1\nget_ipython().input_transformers_post.append(print)"),
    # code hidden behind a line magic is still read
    (L01, "introspection", "import sys\n%time sys._getframe()"),
    (L01, "dynamic", "import sys\nmods = sys.modules"),
    (L01, "dynamic", "name = 'con' + 'v2d'\nconv = getattr(F, name)"),
    (L01, "convolution", "a = 1\nop = getattr(torch.nn.functional, 'conv' 'olution')"),
    # lesson-specific rules
    ("05_padding", "grader", "a = 1\nfrom convcourse.checks import get_exercise"),
    ("05_padding", "grader", "a = 1\nref = __import__('convcourse.checks.exercises.l05_padding')"),
    ("08_full_conv2d", "convolution", "a = 1\nspectrum = np.fft.rfft2(x)"),
    (
        "09_vectorized",
        "convolution",
        "a = 1\ny = torch.ops.aten.convolution.default(x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)",
    ),
    ("09_vectorized", "convolution", "a = 1\nfrom torch.nn.grad import conv2d_input"),
    ("05_padding", "padding", "a = 1\npadded = F.pad(x, (1, 1, 1, 1))"),
    ("11_backward", "autograd", "a = 1\ngrads = torch.autograd.grad(out, (x, w), g)"),
    ("11_backward", "autograd", "a = 1\nout.backward(g)"),
    ("11_backward", "autograd", "import torch.func\ntorch.func.vjp(f, x)"),
    ("11_backward", "autograd", "from torch.func import vjp\nvjp(f, x)"),
    ("13_pooling", "pooling", "a = 1\npool = F.max_pool2d"),
    ("13_pooling", "pooling", "a = 1\nlayer = torch.nn.AvgPool2d(2)"),
    ("13_pooling", "pooling", "a = 1\ny = torch.ops.aten.avg_pool2d(x, [2, 2])"),
]
ANCHOR = {
    L01: "corr2d",
    "05_padding": "same_padding",
    "08_full_conv2d": "conv2d",
    "09_vectorized": "conv2d_fast",
    "10_conv2d_module": "Conv2d",
    "11_backward": "conv2d_backward",
    "12_capstone": "build_model",
    "13_pooling": "max_pool2d",
}


@pytest.mark.parametrize(
    "lesson, rule, code", CONSTRUCTS, ids=[f"{r}:{c.splitlines()[-1][:40]}" for _, r, c in CONSTRUCTS]
)
def test_each_construct_gives_a_finding_at_its_cell_and_line(root, lesson, rule, code):
    lines = code.splitlines()
    code = "# my helper\n" + code if len(lines) == 2 else code
    nb, position = with_cell(lesson, ANCHOR[lesson], code)
    found = findings(root, lesson, nb)
    line = 3 if len(lines) == 2 else len(lines)
    assert (rule, position, line) in found, found
    assert all(cell == position for _, cell, _ in found), found  # nothing else in the answer key is reported


def test_cell_magics_are_read_as_their_code(root):
    nb, position = with_cell(L01, "corr2d", "%%bash\nls ..\ncat /etc/passwd")
    assert ("shell", position, 1) in findings(root, L01, nb)
    nb, position = with_cell(L01, "corr2d", "%%capture\nx = 1\nimport gc\ngc.get_objects()")
    assert ("introspection", position, 4) in findings(root, L01, nb)
    nb, position = with_cell(L01, "corr2d", "%matplotlib inline\nimport math\nmath.sqrt(2)")
    assert findings(root, L01, nb) == []  # a harmless magic is not a finding


def test_a_cell_that_does_not_parse_is_a_finding_not_a_crash(root):
    nb, position = with_cell(L01, "corr2d", "x = 1\ndef broken(:\n    pass")
    assert findings(root, L01, nb) == [("syntax", position, 2)]
    report = notebook_findings("learner", nb, LessonSource(root, L01))
    assert "does not parse" in report[0].finding and report[0].snippet == "def broken(:"


def test_honest_work_of_every_lesson_gives_no_findings(root):
    for lesson in CourseRoot(root.root).lessons():
        assert findings(root, lesson, key(lesson)) == [], lesson
        assert findings(root, lesson, released(lesson)) == [], lesson


HONEST_STYLES = {
    L01: [
        HONEST,
        """
        def corr2d(x, k):
            a, b = np.asarray(x), np.asarray(k)
            rows, cols = a.shape[0] - b.shape[0] + 1, a.shape[1] - b.shape[1] + 1
            res = np.zeros((rows, cols))
            for r in range(rows):
                for c in range(cols):
                    for u in range(b.shape[0]):
                        for v in range(b.shape[1]):
                            res[r, c] += a[r + u, c + v] * b[u, v]
            return torch.as_tensor(res, dtype=x.dtype)
        """,
    ],
    "11_backward": [
        """
        def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1):
            grad_input = torch.zeros_like(input)
            grad_weight = torch.zeros_like(weight)
            return grad_input, grad_weight, grad_output.sum((0, 2, 3))
        """
    ],
}


def test_honest_styles_and_allowed_uses_give_no_findings(root):
    for lesson, styles in HONEST_STYLES.items():
        for style in styles:
            assert findings(root, lesson, with_solution(lesson, ANCHOR[lesson], style)) == []
    # the public test helpers may be called from a learner's own cell; F.conv2d is fine in lesson 10
    nb, _ = with_cell(L01, "corr2d", "x = torch.ones(4, 4)\nassert check('corr2d', corr2d, x=x, k=x[:2, :2])")
    assert findings(root, L01, nb) == []
    nb, _ = with_cell("10_conv2d_module", "Conv2d", "y = F.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 2, 2))")
    assert findings(root, "10_conv2d_module", nb) == []


def test_lesson_11_may_call_conv2d_in_the_function_forward_but_not_in_the_backward(root):
    nb = key("11_backward")
    index = solution_index(nb, "conv2d_backward")
    nb.cells[index].source = nb.cells[index].source.replace(
        "    grad_bias = grad_output.sum(dim=(0, 2, 3))",
        "    grad_bias = grad_output.sum(dim=(0, 2, 3))\n    _ = F.conv2d(input, weight)",
    )
    line = nb.cells[index].source.splitlines().index("    _ = F.conv2d(input, weight)") + 1
    assert findings(root, "11_backward", nb) == [("convolution", index + 1, line)]  # Conv2dFunction's is allowed


def test_locked_and_test_cells_are_skipped_but_a_forged_lock_is_not(root):
    nb = key(L01)
    test = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_corr2d")
    test.source = "import gc\ngc.get_objects()\n" + test.source  # nbgrader restores this cell
    assert findings(root, L01, nb) == []
    forged, position = with_cell(L01, "corr2d", "import gc\ngc.get_objects()", base=nb)
    forged.cells[position - 1].metadata["nbgrader"] = {
        "grade_id": "mine",
        "locked": True,
        "grade": False,
        "solution": False,
        "schema_version": 3,
    }
    assert findings(root, L01, forged) == [("introspection", position, 1), ("introspection", position, 2)]


def test_adversarial_submissions_of_lesson_01_are_flagged_and_honest_ones_are_not(root):
    source = LessonSource(root, L01)
    flagged = {}
    for submission in SUBMISSIONS:
        try:
            nb = nbformat.reads(submission.build().decode(), as_version=4)
        except Exception:  # the corrupted file: reported as unreadable by integrity_report  # noqa: BLE001
            continue
        flagged[submission.student] = {f.rule for f in notebook_findings(submission.student, nb, source)}
    for student in ("honest", "wrong", "warnings", "deleted_test_cell", "edited_test_cell"):
        assert flagged[student] == set(), (student, flagged[student])
    for student, rule in (
        ("patch_allclose", "monkeypatch"),
        ("patch_checks_module", "grader"),
        ("patch_code_object", "monkeypatch"),
        ("rebind_check", "grader"),
        ("patch_builtins", "monkeypatch"),
        ("input_transformer", "ipython"),
        ("tensor_subclass", "dispatch"),
        ("conv2d_in_loops", "convolution"),
        ("aliased_conv_with_fallback", "convolution"),
        ("grader_aware", "environment"),
    ):
        assert rule in flagged[student], (student, flagged[student])


# ----------------------------------------------------------------------------- similarity, CLI

ALICE = '''
def corr2d(x, k):
    """Sliding window, one output pixel at a time."""
    height = x.shape[0] - k.shape[0] + 1
    width = x.shape[1] - k.shape[1] + 1
    rows = []
    for top in range(height):
        row = []
        for left in range(width):
            window = x[top:top + k.shape[0], left:left + k.shape[1]]
            row.append(torch.sum(window * k))
        rows.append(torch.stack(row))
    return torch.stack(rows).to(x.dtype)
'''
# Bob shares Alice's code: other names, other comments, same program.
BOB = (
    ALICE.replace("height", "nh")
    .replace("width", "nw")
    .replace("rows", "lines")
    .replace("row", "line")
    .replace("top", "r")
    .replace("left", "c")
    .replace("window", "patch")
    .replace('"""Sliding window, one output pixel at a time."""', "# my solution")
)
# The answer key, copied with its names changed.
COPIED_KEY = (
    key(L01)
    .cells[solution_index(key(L01), "corr2d")]
    .source.replace("out", "result")
    .replace("kh", "p")
    .replace("kw", "q")
    .replace('"""2-D', '"""my 2-D')
)


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    """A lesson-01 class: a copied answer key, a pair sharing code, independent honest work, cheaters."""
    course = make_course(tmp_path_factory.mktemp("class"), [L01])
    numpy_style = HONEST_STYLES[L01][1]
    cheat, _ = with_cell(L01, "corr2d", "import sys\nsys._getframe(1)\n!cat ../../source/*/*.ipynb", base=released(L01))
    subs = {
        "copier": with_solution(L01, "corr2d", COPIED_KEY),
        "alice": with_solution(L01, "corr2d", ALICE),
        "bob": with_solution(L01, "corr2d", BOB),
        "honest": with_solution(L01, "corr2d", HONEST),
        "numpy_style": with_solution(L01, "corr2d", numpy_style),
        "blank": released(L01),
        "blank_too": released(L01),
        "cheater": cheat,
    }
    for student, nb in subs.items():
        course.submit(L01, student, nb)
    course.submit(L01, "broken", b'{"cells": [ not json')
    return course


def test_similarity_flags_a_copied_key_and_a_shared_pair_but_not_independent_work(klass):
    report = integrity_report(CourseRoot(klass.root), L01)
    pairs = {(p.first, p.second) for p in report.pairs}
    assert pairs == {(ANSWER_KEY, "copier"), ("alice", "bob")}, report.pairs
    assert all(p.score >= report.threshold for p in report.pairs)
    counts = report.counts()
    assert counts["copier"] == counts["alice"] == counts["bob"] == 1
    assert counts["honest"] == counts["numpy_style"] == counts["blank"] == counts["blank_too"] == 0
    rules = {(f.learner, f.rule, f.cell, f.line) for f in report.findings}
    position = solution_index(released(L01), "corr2d") + 2
    assert {
        ("cheater", "introspection", position, 2),
        ("cheater", "shell", position, 3),
        ("broken", "unreadable", None, None),
    } <= rules
    assert {f.learner for f in report.findings} == {"cheater", "broken"}
    text = format_report(report)
    assert "alice ~ bob" in text and f"{ANSWER_KEY} ~ copier" in text and "cheater" in text


def test_cli_prints_the_table_and_writes_the_csv_next_to_the_course(klass, capsys):
    assert cli.main(["--course", str(klass.root), "integrity", L01]) == 0
    out = capsys.readouterr().out
    assert "cheater" in out and "cell" in out and "sys._getframe(1)" in out
    path = klass.root / "reports" / f"integrity_{L01}.csv"
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == ["learner", "finding", "rule", "cell", "line", "snippet"]
    by_rule = {(r["learner"], r["rule"]) for r in rows}
    assert {
        ("cheater", "introspection"),
        ("cheater", "shell"),
        ("copier", "similarity"),
        ("bob", "similarity"),
        ("broken", "unreadable"),
    } <= by_rule
    assert not {r["learner"] for r in rows} & {"honest", "numpy_style", "blank"}
    own = klass.root.parent / "mine.csv"
    assert cli.main(["--course", str(klass.root), "integrity", L01, "--csv", str(own), "--threshold", "0.99"]) == 0
    assert own.exists()


def test_cli_exit_2_for_a_bad_lesson_missing_submissions_or_threshold(klass, course_factory, capsys):
    assert cli.main(["--course", str(klass.root), "integrity", "99_nope"]) == 2
    assert "no lesson '99_nope'" in capsys.readouterr().err
    empty = course_factory([L01])
    assert cli.main(["--course", str(empty.root), "integrity", L01]) == 2
    assert f"no submissions of {L01}" in capsys.readouterr().err
    assert cli.main(["--course", str(klass.root), "integrity", L01, "--threshold", "7"]) == 2
    assert "--threshold" in capsys.readouterr().err


def test_summary_has_an_integrity_column(klass, tmp_path, capsys):
    with klass.gradebook() as gb:
        gb.update_or_create_assignment(L01)
    assert cli.main(["--course", str(klass.root), "summary", L01, "--plot", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("learner"))
    assert header.split() == ["learner", "score", "integrity"]
    rows = {
        line.split()[0]: line.split()
        for line in out.splitlines()[out.splitlines().index(header) + 1 :]
        if line.split() and line.split()[0] in {"cheater", "honest", "copier", "alice"}
    }
    counts = integrity_report(CourseRoot(klass.root), L01).counts()
    assert counts["cheater"] == 3  # frame introspection, the shell escape, and the '..' path it reads
    assert rows["honest"][-1] == "-" and rows["cheater"][-1] == "3" and rows["copier"][-1] == "1"
    assert rows["alice"][1:3] == ["not", "graded"]
    assert f"details: convcourse integrity {L01}" in out


def test_read_notebook_joins_list_sources(tmp_path):
    path = tmp_path / "nb.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a = 1\nb = 2")])
    raw = nbformat.writes(nb)
    assert '"a = 1\\n",' in raw  # nbformat stores multi-line sources as a list of lines
    path.write_text(raw)
    assert read_notebook(path).cells[0].source == "a = 1\nb = 2"
