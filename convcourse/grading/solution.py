"""The answer key: solutions stay in place, their ### BEGIN/END SOLUTION delimiter lines go."""

from __future__ import annotations

import re

from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

_DELIMITER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)


class StripSolutionDelimiters(NbGraderPreprocessor):
    """Remove solution delimiter lines so the answer key reads like ordinary code and prose."""

    def preprocess_cell(self, cell: NotebookNode, resources, index):
        if isinstance(cell.get("source"), str) and "SOLUTION" in cell.source:
            cell.source = _DELIMITER.sub("", cell.source).rstrip("\n")
        return cell, resources
