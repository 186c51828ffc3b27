"""Regenerate ``notebooks/`` (learner copies) and ``solutions/`` (answer key) from ``autograder/source``.

Each lesson is built with real nbgrader (``generate_assignment`` and ``generate_solution``) in a
throw-away course directory, so a build touches no gradebook and can run anywhere. The output is
normalised (no outputs, stable JSON) so that ``--check`` can compare it byte for byte with what is
committed.

    python -m convcourse.build            # rebuild everything
    python -m convcourse.build --check    # exit 1 if notebooks/ or solutions/ are stale
    python -m convcourse.build 01_sliding_window
"""

from __future__ import annotations

import argparse
import filecmp
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "autograder" / "source"
GENERATED = ("notebooks", "solutions")


def lessons(source: Path = SOURCE) -> list[str]:
    """Lesson ids (folder names under autograder/source), in course order."""
    return sorted(p.name for p in source.iterdir() if p.is_dir() and (p / f"{p.name}.ipynb").exists())


def normalise_notebook(path: Path) -> None:
    """Strip outputs and execution counts and write with nbformat's stable formatting."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)


def _build_lesson(lesson: str, course: Path, source: Path) -> tuple[Path, Path]:
    from nbgrader.converters import GenerateAssignment, GenerateSolution
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    from .grading import ensure_tools_on_path
    from .grading.config import apply

    ensure_tools_on_path()
    shutil.copytree(
        source / lesson, course / "source" / lesson, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    )
    config = apply(Config(), root=course)
    config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    config.CourseDirectory.assignment_id = lesson
    config.GenerateAssignment.force = True
    config.GenerateSolution.force = True
    quiet = logging.getLogger("convcourse.build.nbgrader")
    quiet.setLevel(logging.WARNING)
    for converter_class in (GenerateAssignment, GenerateSolution):
        coursedir = CourseDirectory(config=config)
        converter = converter_class(coursedir=coursedir, config=config)
        converter.log = quiet
        converter.start()
    return course / "release" / lesson, course / "solution" / lesson


def build(targets: list[str] | None = None, out_root: Path = REPO, source: Path = SOURCE) -> list[Path]:
    """Build the given lessons (default: all) into out_root/notebooks and out_root/solutions."""
    names = targets or lessons(source)
    unknown = sorted(set(names) - set(lessons(source)))
    if unknown:
        raise SystemExit(f"no such lesson under {source}: {', '.join(unknown)}")
    written: list[Path] = []
    for lesson in names:
        with tempfile.TemporaryDirectory(prefix=f"build-{lesson}-") as tmp:
            release, solution = _build_lesson(lesson, Path(tmp), source)
            for built, kind in ((release, "notebooks"), (solution, "solutions")):
                target = out_root / kind / lesson
                if target.exists():
                    shutil.rmtree(target)
                shutil.copytree(built, target)
                for notebook in target.glob("*.ipynb"):
                    normalise_notebook(notebook)
                written.append(target)
    write_index(out_root / "notebooks" / "README.md", source)
    return written


def lesson_title(notebook: Path) -> str:
    """The first Markdown heading of a notebook, without the leading #'s."""
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return notebook.stem


def write_index(path: Path, source: Path = SOURCE) -> None:
    """notebooks/README.md: the table of contents learners see in JupyterLab's file browser."""
    lines = [
        "# Conv2d from the ground up: lessons",
        "",
        "Work through the lessons in order. Each one is a notebook: read, play with the widgets, "
        "fill in the cells marked `YOUR CODE HERE`, and run the tests under them.",
        "",
        "| # | lesson | notebook |",
        "|---|---|---|",
    ]
    for lesson in lessons(source):
        title = lesson_title(source / lesson / f"{lesson}.ipynb")
        lines.append(f"| {lesson[:2]} | {title} | [{lesson}.ipynb]({lesson}/{lesson}.ipynb) |")
    lines += [
        "",
        "*This folder is generated from `autograder/source/` by `make build`; edits here are "
        "overwritten. Your own work is safe as long as you keep it in your copy of the notebooks.*",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def stale(out_root: Path = REPO, source: Path = SOURCE) -> list[str]:
    """Files that differ between a fresh build and what is in out_root (empty list: up to date)."""
    with tempfile.TemporaryDirectory(prefix="build-check-") as tmp:
        build(out_root=Path(tmp), source=source)
        differences: list[str] = []
        for kind in GENERATED:
            differences += _compare(Path(tmp) / kind, out_root / kind, kind)
        return differences


def _compare(fresh: Path, committed: Path, prefix: str) -> list[str]:
    if not committed.exists():
        return [f"{prefix}/ (missing)"]
    cmp = filecmp.dircmp(fresh, committed, ignore=[".ipynb_checkpoints", "__pycache__"])
    out = [f"{prefix}/{n} (missing)" for n in cmp.left_only]
    out += [f"{prefix}/{n} (not produced by the build)" for n in cmp.right_only]
    _, mismatch, errors = filecmp.cmpfiles(fresh, committed, cmp.common_files, shallow=False)
    out += [f"{prefix}/{n} (differs)" for n in mismatch + errors]
    for sub in cmp.common_dirs:
        out += _compare(fresh / sub, committed / sub, f"{prefix}/{sub}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", help="lesson ids (default: all)")
    parser.add_argument("--check", action="store_true", help="only report whether the generated copies are stale")
    args = parser.parse_args(argv)
    if args.check:
        differences = stale()
        if differences:
            print("notebooks/ or solutions/ are stale; run 'make build' and commit:\n  " + "\n  ".join(differences))
            return 1
        print("notebooks/ and solutions/ are up to date")
        return 0
    for path in build(args.lessons or None):
        print(f"built {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
