"""The committed notebooks as a reader first sees them (GitHub, JupyterLab before running).

They come from a full-mode run, show no TensorFlow start-up stderr and no progress bar frozen at 0 %,
hold no widget without a static picture, and hide their solutions for real.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def text(value) -> str:
    return "".join(value) if isinstance(value, list) else value


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_come_from_a_complete_full_mode_run(path):
    cells = code_cells(load(path))
    first = "".join(text(o.get("text", "")) for o in cells[0]["outputs"])
    assert "full mode" in first, f"{path.name}: committed outputs must come from full mode (first cell printed {first!r})"
    unexecuted = [i for i, c in enumerate(cells) if c["execution_count"] is None]
    assert not unexecuted, f"{path.name}: code cells {unexecuted} were not executed"
    errors = [o["ename"] for c in cells for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, f"{path.name}: committed errors {errors}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_stderr_and_no_frozen_progress_bars(path):
    for i, cell in enumerate(code_cells(load(path))):
        for out in cell["outputs"]:
            if out["output_type"] == "stream":
                assert out["name"] != "stderr", f"{path.name}, code cell {i}: stderr output {text(out['text'])[:200]!r}"
            data = out.get("data", {})
            if WIDGET in data:  # a widget must carry a static picture (explorers do; a progress bar must not stay a widget)
                assert "image/png" in data, f"{path.name}, code cell {i}: widget without a static picture: {text(data.get('text/plain', ''))[:80]!r}"
            plain = text(data.get("text/plain", ""))
            assert "0%|" not in plain, f"{path.name}, code cell {i}: a progress bar frozen at 0 %: {plain[:80]!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_solutions_are_hidden_and_follow_an_empty_attempt_cell(path):
    cells = load(path)["cells"]
    answers = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and re.search(r"<summary>.{0,10}Solution", text(c["source"]))]
    assert answers, f"{path.name}: no exercise solutions found"
    for i in answers:
        assert "</details>" in text(cells[i]["source"]), f"{path.name}, cell {i}: the solution is not closed inside <details>"
        before = cells[i - 1]
        assert before["cell_type"] == "code" and text(before["source"]).strip() == "# your attempt", (
            f"{path.name}, cell {i}: a solution must follow an empty '# your attempt' cell"
        )
    for i, c in enumerate(cells):
        if "solution" in c.get("metadata", {}).get("tags", []):
            hidden = c["metadata"].get("jupyter", {})
            assert hidden.get("source_hidden") and hidden.get("outputs_hidden"), f"{path.name}, cell {i}: solution code not collapsed"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_network_is_not_called_an_encoder_in_code(path):
    sources = "\n".join(text(c["source"]) for c in code_cells(load(path)))
    assert "Encoder(" not in sources, f"{path.name}: use the inference-network names (MLPInferenceNetwork, ...)"
