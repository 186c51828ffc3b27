"""Environment check for learners (lesson 00): versions, data, device."""

from __future__ import annotations

import importlib.metadata as metadata
import platform

#: The versions the course is pinned to (pyproject.toml).
EXPECTED = {
    "torch": "2.13.0",
    "numpy": "2.4.6",
    "matplotlib": "3.11.2",
    "ipywidgets": "8.1.9",
    "jupyterlab": "4.6.6",
    "nbgrader": "0.9.6",
}


def check_environment() -> list[tuple[str, bool, str]]:
    """(item, ok, detail) rows; ok is False where something needs fixing."""
    rows: list[tuple[str, bool, str]] = []
    python = platform.python_version()
    rows.append(("Python", python.startswith("3.11."), f"{python} (course: 3.11)"))
    for package, wanted in EXPECTED.items():
        try:
            found = metadata.version(package)
        except metadata.PackageNotFoundError:
            rows.append((package, False, "not installed: run 'make lab' from the course folder"))
            continue
        same = found.split("+")[0] == wanted
        rows.append((package, same, found if same else f"{found}, course pins {wanted}: results may differ"))
    try:
        from .data import list_images, load_digits, load_image

        for name in list_images():
            load_image(name, size=8)
        n = len(load_digits()[1])
        rows.append(("course data", True, f"{len(list_images())} photographs, {n} digits"))
    except Exception as error:  # report, never crash the welcome lesson  # noqa: BLE001
        rows.append(("course data", False, str(error)))
    import torch

    device = "CUDA: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (no GPU needed)"
    rows.append(("device", True, device))
    return rows


def environment_report() -> bool:
    """Print the environment check as a table; True when everything is as the course expects."""
    rows = check_environment()
    width = max(len(item) for item, _, _ in rows)
    for item, ok, detail in rows:
        print(f"{'✓' if ok else '✗'} {item:<{width}}  {detail}")
    all_ok = all(ok for _, ok, _ in rows)
    print("\nAll set." if all_ok else "\nSomething above needs attention (✗).")
    return all_ok
