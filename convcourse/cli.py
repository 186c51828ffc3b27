"""``convcourse``: the course's command line (instructor workflow; see README, "Instructor guide").

    convcourse roster students.csv
    convcourse release 01_sliding_window [--exchange]
    convcourse collect 01_sliding_window --zip lms_download.zip   (or --exchange)
    convcourse grade 01_sliding_window [--student ID] [--workers N | --scheduler tcp://HOST:8786]
                                       [--timeout S] [--force]
    convcourse feedback 01_sliding_window [--student ID] [--exchange]
    convcourse grades [--out <course>/reports/grades.csv]
    convcourse summary 01_sliding_window [--by-learner] [--plot <course>/reports/summary_01_sliding_window.png]
    convcourse integrity 01_sliding_window [--threshold 0.6] [--csv FILE]
    convcourse formgrader [--port 8888] [--no-browser] [-- JUPYTER LAB OPTIONS]

Each subcommand is one ``@command`` function below: its docstring is its help, its ``args`` list the
argparse arguments, and it returns the exit status.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from .grading.config import CELL_TIMEOUT, LEARNER_TIMEOUT

COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], list[tuple[tuple, dict]]]] = {}


def arg(*flags, **options) -> tuple[tuple, dict]:
    return flags, options


def command(name: str, *args: tuple[tuple, dict]):
    """Register ``function(ns) -> int`` as subcommand ``name`` with argparse ``args``."""

    def register(function: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = (function, list(args))
        return function

    return register


def _course(ns: argparse.Namespace):
    from .instructor.course import CourseRoot, default_root

    return CourseRoot(Path(ns.course) if ns.course else default_root())


LESSON = arg("lesson", help="lesson id, e.g. 01_sliding_window")


@command(
    "roster",
    arg(
        "csv",
        type=Path,
        help="CSV with a header row: id (or student_id/username), first_name, last_name, email, lms_user_id",
    ),
)
def roster(ns: argparse.Namespace) -> int:
    """Add (or update) learners in the gradebook from a CSV roster."""
    from .instructor.roster import import_roster

    result = import_roster(_course(ns), ns.csv)
    print(f"roster: {len(result.added)} added, {len(result.updated)} updated, {len(result.unchanged)} unchanged")
    return 0


@command(
    "release",
    LESSON,
    arg("--exchange", action="store_true", help="also nbgrader release_assignment (learners fetch it on JupyterHub)"),
)
def release(ns: argparse.Namespace) -> int:
    """Generate a lesson (gradebook + release/<lesson>/) and zip it for an LMS; optionally release to the exchange."""
    from .instructor.release import release as run

    archive = run(_course(ns), ns.lesson, exchange=ns.exchange)
    print(f"released {ns.lesson}: {archive}" + (" and into the exchange" if ns.exchange else ""))
    return 0


@command(
    "collect",
    LESSON,
    arg("--zip", type=Path, help="LMS download: notebooks named <learner id>_<lesson>.ipynb"),
    arg(
        "--pattern",
        help="regular expression with (?P<student_id>...) and (?P<file_id>...) for other "
        "LMS file names (matched against the full path)",
    ),
    arg("--exchange", action="store_true", help="nbgrader collect from the exchange (JupyterHub)"),
)
def collect(ns: argparse.Namespace) -> int:
    """Import submissions into submitted/<learner>/<lesson>/ from an LMS zip or from the exchange."""
    from .instructor import collect as impl

    if bool(ns.zip) == bool(ns.exchange):
        print("collect: give exactly one of --zip FILE or --exchange", file=sys.stderr)
        return 2
    course = _course(ns)
    imported = (
        impl.collect_zip(course, ns.lesson, ns.zip, ns.pattern) if ns.zip else impl.collect_exchange(course, ns.lesson)
    )
    print(
        f"collected {ns.lesson}: {len(imported)} new or changed submission(s)"
        + (f": {', '.join(imported)}" if imported and len(imported) <= 20 else "")
    )
    return 0


@command(
    "grade",
    LESSON,
    arg("--student", action="append", help="grade only this learner (repeatable)"),
    arg("--workers", type=int, help="parallel grading processes (default: CPU cores)"),
    arg(
        "--scheduler",
        metavar="ADDRESS",
        help="grade on the workers of this Dask scheduler, e.g. tcp://HOST:8786, instead of local processes "
        "(README, 'Grading on a Dask cluster')",
    ),
    arg(
        "--timeout",
        type=float,
        default=None,
        help=f"seconds per learner before the kernel is killed and the learner reported (default {LEARNER_TIMEOUT})",
    ),
    arg("--force", action="store_true", help="regrade everything, not only changed or failed submissions"),
    arg("--no-progress", action="store_true", help="no progress bar"),
    arg("--json", type=Path, help="also write the outcome per learner to this JSON file"),
)
def grade(ns: argparse.Namespace) -> int:
    """Autograde a lesson in parallel (only new, changed or failed submissions unless --force)."""
    from .instructor.autograde import DEFAULT_TIMEOUT, autograde, format_report, report_json
    from .instructor.course import CourseError

    if ns.scheduler and ns.workers:
        raise CourseError("give --workers (local processes) or --scheduler (a Dask cluster), not both")
    report = autograde(
        _course(ns),
        ns.lesson,
        students=ns.student,
        workers=ns.workers,
        timeout=ns.timeout or DEFAULT_TIMEOUT,
        force=ns.force,
        progress=not ns.no_progress,
        scheduler=ns.scheduler,
    )
    print(format_report(report))
    if ns.json:
        ns.json.write_text(report_json(report))
    return 1 if report.failed else 0


@command(
    "feedback",
    LESSON,
    arg("--student", help="only this learner"),
    arg("--exchange", action="store_true", help="also nbgrader release_feedback to the exchange"),
)
def feedback(ns: argparse.Namespace) -> int:
    """Generate HTML feedback (hidden tests' code never shown) under feedback/<learner>/<lesson>/."""
    from .instructor.report import feedback as run

    folder = run(_course(ns), ns.lesson, ns.student, ns.exchange)
    print(f"feedback for {ns.lesson} in {folder}")
    return 0


@command(
    "grades",
    arg("--out", type=Path, help="CSV path (default <course>/reports/grades.csv)"),
    arg("--lesson", action="append", help="only this lesson (repeatable)"),
)
def grades(ns: argparse.Namespace) -> int:
    """Export the gradebook as CSV (nbgrader export): one row per learner and lesson, with a status column
    (graded / submitted, not graded / no submission)."""
    from .instructor.report import export_grades, reports_dir

    course = _course(ns)
    path = export_grades(course, ns.out or reports_dir(course) / "grades.csv", ns.lesson)
    print(f"grades written to {path}")
    return 0


@command(
    "summary",
    LESSON,
    arg("--plot", type=Path, help="PNG path (default <course>/reports/summary_<lesson>.png)"),
    arg("--by-learner", action="store_true", help="list the learners under each diagnosis"),
)
def summary(ns: argparse.Namespace) -> int:
    """Per exercise: mean score and fail rate over the class, what the failing submissions got wrong (the
    grader's diagnoses), and per learner the score and integrity flags; as tables and a bar chart."""
    from .instructor.autograde import sandbox_note
    from .instructor.misconceptions import format_misconceptions, misconceptions
    from .instructor.report import (
        exercise_stats,
        format_learners,
        format_table,
        learner_stats,
        plot_summary,
        reports_dir,
    )

    course = _course(ns)
    rows = exercise_stats(course, ns.lesson)
    print(format_table(rows))
    print()
    diagnoses = misconceptions(course, ns.lesson)
    print(format_misconceptions(diagnoses, by_learner=ns.by_learner))
    print()
    print(format_learners(learner_stats(course, ns.lesson), ns.lesson))
    path = plot_summary(rows, ns.plot or reports_dir(course) / f"summary_{ns.lesson}.png", diagnoses)
    print(f"plot written to {path}")
    print(sandbox_note(course, ns.lesson))
    return 0


@command(
    "integrity",
    LESSON,
    arg(
        "--threshold",
        type=float,
        default=None,
        help="flag pairs sharing at least this share of code (0-1, default 0.6)",
    ),
    arg("--csv", type=Path, help="CSV path (default <course>/reports/integrity_<lesson>.csv)"),
)
def integrity(ns: argparse.Namespace) -> int:
    """Flag for review, per learner with cell and line, code that defeats the lesson's rules, and
    submissions similar to the answer key or to each other (reads the notebooks; runs nothing)."""
    from .instructor.course import CourseError
    from .instructor.integrity import DEFAULT_THRESHOLD, format_report, integrity_report, write_csv
    from .instructor.report import reports_dir

    threshold = DEFAULT_THRESHOLD if ns.threshold is None else ns.threshold
    if not 0 < threshold <= 1:
        raise CourseError(f"--threshold must be between 0 and 1 (a share of code), got {threshold}")
    course = _course(ns)
    report = integrity_report(course, ns.lesson, threshold=threshold)
    print(format_report(report))
    path = write_csv(report, ns.csv or reports_dir(course) / f"integrity_{ns.lesson}.csv")
    print(f"\nCSV written to {path}")
    return 0


@command(
    "formgrader",
    arg("--port", type=int, default=8888, help="port (default 8888)"),
    arg("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"),
    arg("--no-browser", action="store_true", help="do not open a browser"),
    arg("lab_args", nargs=argparse.REMAINDER, help="after --: more options for jupyter lab"),
)
def formgrader(ns: argparse.Namespace) -> int:
    """Open JupyterLab on the course root with nbgrader's formgrader and Create Assignment tools."""
    from .instructor.formgrader import run

    extra = ns.lab_args[1:] if ns.lab_args[:1] == ["--"] else ns.lab_args
    return run(_course(ns), port=ns.port, ip=ns.ip, open_browser=not ns.no_browser, extra=extra)


@command(
    "selfcheck",
    arg("notebook", type=Path, help="the .ipynb file to check (a learner's own copy works)"),
    arg(
        "--timeout",
        type=int,
        default=None,
        help=f"seconds per cell (default: the grader's, {CELL_TIMEOUT} s, or the cell's own limit)",
    ),
)
def selfcheck(ns: argparse.Namespace) -> int:
    """For learners: run a notebook's visible tests with the grader's executor; exit 1 when any fails."""
    from .selfcheck import main as selfcheck_main

    return selfcheck_main([str(ns.notebook)] + (["--timeout", str(ns.timeout)] if ns.timeout else []))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convcourse", description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--course", help="nbgrader course root (default: $CONVCOURSE_COURSE or the repo's autograder/)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (function, args) in COMMANDS.items():
        doc = (function.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc)
        for flags, options in args:
            p.add_argument(*flags, **options)
        p.set_defaults(run=function)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .grading import ensure_tools_on_path
    from .instructor.course import CourseError

    ensure_tools_on_path()
    ns = build_parser().parse_args(argv)
    try:
        return ns.run(ns)
    except CourseError as error:
        print(f"convcourse {ns.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"convcourse {ns.command}: interrupted; rerun the same command to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
