"""The answer key keeps solutions in place without their ### BEGIN/END SOLUTION delimiter lines; the
learner copy gets check-your-understanding cells with every answer replaced by ``...``."""

from __future__ import annotations

import re

from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

from ..quizcells import is_quiz_cell, stub_answers

_DELIMITER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)


class StripSolutionDelimiters(NbGraderPreprocessor):
    """Remove solution delimiter lines so the answer key reads like ordinary code and prose."""

    def preprocess_cell(self, cell: NotebookNode, resources, index):
        if isinstance(cell.get("source"), str) and "SOLUTION" in cell.source:
            cell.source = _DELIMITER.sub("", cell.source).rstrip("\n")
        return cell, resources


class QuizStubs(NbGraderPreprocessor):
    """In the learner copy, replace each answer in a quiz cell (``metadata.convcourse.quiz``) by ``...``."""

    def preprocess_cell(self, cell: NotebookNode, resources, index):
        if is_quiz_cell(cell):
            cell.source = stub_answers(cell.source)
        return cell, resources
