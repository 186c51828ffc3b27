"""`make html`: the answer key rendered to static HTML with its plots (with alt text) and widget state."""

from __future__ import annotations

import json
import re

import pytest

from convcourse import html

LESSON = "01_sliding_window"


@pytest.mark.slow
def test_a_lesson_renders_with_plots_alt_text_and_widget_state(tmp_path):
    written = html.render([LESSON], out=tmp_path, log=lambda *_: None)
    assert written == [tmp_path / f"{LESSON}.html"]
    page = written[0].read_text()

    images = re.findall(r"<img [^>]*>", page)
    plots = [tag for tag in images if "data:image/png;base64," in tag]
    assert len(plots) >= 3, f"expected the lesson's plots as embedded PNGs, found {len(plots)}"
    # Every plot carries the description convcourse.plots gives it, not nbconvert's placeholder.
    assert "No description has been provided" not in page
    assert all('alt="Figure with' in tag for tag in plots), [tag[:200] for tag in plots if "alt=" not in tag]
    assert 'alt="Figure with 4 panels: input; box blur; sharpen; Sobel x (edges)' in page

    # The widgets' state is stored, so the page shows them without a kernel.
    match = re.search(r'<script type="application/vnd.jupyter.widget-state\+json">(.*?)</script>', page, re.S)
    assert match, "no widget state in the page"
    state = json.loads(match.group(1))["state"]
    assert any(model["model_name"] == "IntSliderModel" for model in state.values())
    outputs = [model for model in state.values() if model["model_name"] == "OutputModel"]
    assert any(o["data"].get("image/png") for model in outputs for o in model["state"]["outputs"]), (
        "the widget's figure is not in the stored state"
    )
    assert "application/vnd.jupyter.widget-view+json" in page
    # ...and a static picture of each figure widget, for readers without the widgets script (offline).
    snapshots = re.findall(r'<details class="convcourse-widget-snapshot">.*?</details>', page, re.S)
    assert len(snapshots) == 2 and all('alt="Figure with' in snap and "image/png;base64" in snap for snap in snapshots)

    # The self-check cell notes that it did nothing instead of starting a kernel or failing.
    assert "self-check skipped: static HTML rendering" in page
    index = (tmp_path / "index.html").read_text()
    assert f'href="{LESSON}.html"' in index and "The sliding window" in index


def test_unknown_lessons_are_refused(capsys):
    assert html.main(["99_nope"]) == 2
    assert "no such lesson" in capsys.readouterr().err


def test_figures_carry_alt_text_built_from_their_titles_and_caption():
    import matplotlib.pyplot as plt
    import torch

    from convcourse.plots import figure_alt_text, set_alt_text, show_images

    fig = show_images([torch.zeros(4, 4), torch.ones(4, 4)], ["zeros", "ones"], caption="Two flat images.")
    assert figure_alt_text(fig) == "Figure with 2 panels: zeros; ones. Two flat images."
    assert figure_alt_text(set_alt_text(fig, "A black and a white square.")) == "A black and a white square."
    plt.close(fig)
