"""Load a function from a notebook (e.g. the answer key) without running its demos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def load_function(notebook: str | Path, name: str) -> Any:
    """Run the notebook's first code cell (its imports) and the cells that define ``name``; return it.

    Demo, widget and timing cells are not run.
    """
    path = Path(notebook)
    if not path.is_absolute():
        path = REPO / path
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    namespace: dict[str, Any] = {"__name__": f"notebook_{path.stem}"}
    for index, cell in enumerate(cells):
        source = "".join(cell["source"])
        if index == 0 or f"def {name}(" in source or f"class {name}(" in source:
            exec(compile(source, f"{path.name}[cell {index}]", "exec"), namespace)  # noqa: S102 - our answer key
    if name not in namespace:
        raise LookupError(f"{path} defines no {name!r}")
    return namespace[name]
