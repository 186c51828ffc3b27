"""What a Dask worker must share with the instructor's machine to grade: the facts :func:`fingerprint` reads.

``convcourse grade --scheduler`` runs :func:`fingerprint` on every Dask worker before sending it a learner
(:mod:`.cluster`) and compares it with its own. The function is sent by value (this module imports only the
standard library at its top), so a worker whose Python lacks ``convcourse`` still answers, saying so.
"""

from __future__ import annotations

#: Packages whose versions decide a learner's grade (the grading stack) or whether the job runs at all.
PACKAGES = ("torch", "numpy", "nbgrader", "nbconvert", "nbclient", "ipykernel", "jupyter_client", "distributed")
#: Facts shown with a worker's address but not compared.
DESCRIPTIVE = ("host", "executable", "sandbox")
#: Facts read through the ``convcourse`` package.
COURSE = ("convcourse code", "course data")


def fingerprint() -> dict[str, str]:
    """Python version, the grading packages' versions, a hash of the ``convcourse`` package's code and of
    the course data, and (not compared) host, interpreter and whether grading kernels can be sandboxed."""
    import hashlib
    import importlib.metadata as metadata
    import platform
    import socket
    import sys
    from pathlib import Path

    facts = {
        "host": socket.gethostname(),
        "executable": sys.executable,
        "python": ".".join(platform.python_version_tuple()[:2]),
    }
    for package in PACKAGES:
        try:
            facts[package] = metadata.version(package).split("+")[0]
        except metadata.PackageNotFoundError:
            facts[package] = "not installed"
    try:
        import convcourse
        from convcourse.data import data_dir
        from convcourse.grading import sandbox

        code = hashlib.sha256()
        package = Path(convcourse.__file__).parent
        for path in sorted(package.rglob("*.py")):
            code.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
        facts["convcourse code"] = code.hexdigest()[:16]
        data = hashlib.sha256()
        for path in sorted(p for p in data_dir().iterdir() if p.is_file()):
            data.update(path.name.encode() + b"\0" + path.read_bytes())
        facts["course data"] = data.hexdigest()[:16]
        facts["sandbox"] = sandbox.describe()
    except Exception as error:  # noqa: BLE001 - whatever is missing is the answer
        facts["convcourse"] = f"cannot be imported ({type(error).__name__}: {error})"
    return facts


def differences(worker: dict[str, str], here: dict[str, str]) -> list[str]:
    """What a worker's :func:`fingerprint` has that differs from this machine's, one phrase each."""
    if "convcourse" in worker:  # the course package is missing: its code and data could not be read
        return [f"convcourse {worker['convcourse']}"] + differences(
            {k: v for k, v in worker.items() if k != "convcourse"} | {k: here.get(k) for k in COURSE},
            here,
        )
    return [
        f"{key} {worker.get(key, 'missing')} (here {value})"
        for key, value in here.items()
        if key not in DESCRIPTIVE and worker.get(key) != value
    ]
