"""docs/sweeps.md's notebook recipe runs as written: its code blocks, executed in order against a
real tiny-random server named by ``VISAGE_SERVER``, sweep the quick preset into runs/quick, read
it back, evaluate one point and draw the figure, and what they leave behind is what the text says;
a second call resumes without measuring a point."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from safety_landscape.client import Run, ValidationError, load_run, sweep_landscape
from safety_landscape.client.call_results import Evaluation

DOC = Path(__file__).resolve().parent.parent / "docs" / "sweeps.md"


def _recipe() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("### In a notebook"):]
    section = section[:section.index("\n## ")] if "\n## " in section else section
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) >= 2, "the notebook section lost its code"
    return blocks


def test_the_notebook_recipe_runs_as_written(tiny_server, tmp_path, monkeypatch, capsys):
    pytest.importorskip("pandas")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VISAGE_SERVER", tiny_server.target)
    for name in ("VISAGE_TOKEN", "VISAGE_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    namespace: dict[str, object] = {"__name__": "__notebook__"}
    for block in _recipe():
        exec(compile(block, str(DOC), "exec"), namespace)  # the documented recipe, run as written
    printed = capsys.readouterr().out

    run = namespace["run"]
    assert isinstance(run, Run) and run.folder == Path("runs/quick")
    assert (tmp_path / "runs" / "quick" / "report.html").is_file() and run.report.is_file()
    points = namespace["points"]
    assert len(points) == 14 and set(points.metric) == {"asr", "refusal"}  # 7 points x (ASR, over-refusal)
    assert list(namespace["asr"].a) == sorted(namespace["asr"].a) and len(namespace["asr"]) == 7
    assert "14 evaluated, 0 reused" in printed and "VISAGE " in printed
    visage = namespace["visage"]
    assert visage.mean == run.visage.series["d0|default"].reference  # one direction: the mean is its score
    assert isinstance(namespace["r"], Evaluation) and namespace["r"].total == 4
    assert {p.name for p in tmp_path.glob("asr.*")} == {"asr.png", "asr.svg", "asr.pdf"}

    again = sweep_landscape(preset="quick", out=tmp_path / "runs" / "quick")  # resumes: nothing left to measure
    assert again.result is not None and (again.result.evaluated, again.result.reused) == (0, 14)
    assert again.visage == run.visage
    with pytest.raises(ValidationError, match=r"results\.sqlite"):
        load_run(tmp_path)  # a folder that is not a sweep's says so
    with pytest.raises(ValidationError, match="preset"):
        sweep_landscape(out="runs/none")
