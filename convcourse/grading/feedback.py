"""Feedback that shows learners why a test failed, never the hidden tests' code."""

from __future__ import annotations

from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor

HIDDEN_NOTE = "# Hidden tests ran here; their results are below."


class HideHiddenTests(NbGraderPreprocessor):
    """Remove hidden-test regions from test cells and reduce their error outputs to the message."""

    def preprocess_cell(self, cell: NotebookNode, resources, index):
        if cell.cell_type != "code" or not utils.is_grade(cell) or utils.is_solution(cell):
            return cell, resources
        remover = ClearHiddenTests(enforce_metadata=False)
        if remover._remove_hidden_test_region(cell):
            cell.source = cell.source.rstrip("\n") + "\n" + HIDDEN_NOTE
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output.traceback = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources
