"""The example specs and gate configs ship inside the package and the repository's ``examples/``
holds identical copies; every one loads; ``visage sweep --print-spec NAME`` prints one as it
ships; ``visage gate init`` writes the commented starter config, which loads as written, names
every key of a gate config, and marks truthfully which candidate forms the gate accepts today."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

from safety_landscape.client.cli import main
from safety_landscape.client.examples import gate_examples, gate_text, sweep_examples, sweep_text
from safety_landscape.client.gate.config import (
    _TABLE_KEYS,
    GateConfigError,
    Thresholds,
    config_from_dict,
    load_config,
)
from safety_landscape.client.sweep.spec import Capability, load_spec, preset, validate

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "client" / "examples"


@pytest.mark.parametrize("kind", ["sweeps", "gate"])
def test_the_repository_examples_are_the_shipped_files(kind):
    shipped = {p.name: p.read_bytes() for p in (SHIPPED / kind).iterdir() if p.is_file()}
    copies = {p.name: p.read_bytes() for p in (ROOT / "examples" / kind).iterdir() if p.is_file()}
    assert sorted(copies) == sorted(shipped), f"examples/{kind} and client/examples/{kind} list different files"
    for name, data in shipped.items():
        assert copies[name] == data, f"examples/{kind}/{name} differs: copy client/examples/{kind}/{name} over it"


def test_the_package_data_declares_every_shipped_file():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["safety_landscape.client.examples"]
    for path in SHIPPED.rglob("*"):
        if path.is_file() and path.suffix != ".py" and "__pycache__" not in path.parts:
            rel = path.relative_to(SHIPPED).as_posix()
            assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} would be left out of the wheel"


def test_every_shipped_spec_loads_and_quick_is_the_preset():
    names = sweep_examples()
    assert {"quick", "paper", "paper-template"} <= set(names)
    for name in names:
        load_spec(SHIPPED / "sweeps" / f"{name}.toml")
    assert load_spec(SHIPPED / "sweeps" / "quick.toml") == validate(preset("quick"))


def test_print_spec_prints_the_shipped_file_and_needs_no_server(capsys, tmp_path):
    for name in ("quick", "paper", "capability"):
        with pytest.raises(SystemExit) as done:  # as --help does: print, then exit 0
            main(["sweep", "--print-spec", name])
        assert done.value.code == 0
        printed = capsys.readouterr().out
        assert printed == sweep_text(name) == (SHIPPED / "sweeps" / f"{name}.toml").read_text()
    saved = tmp_path / "quick.toml"
    saved.write_text(sweep_text("quick"))
    assert load_spec(saved) == validate(preset("quick"))  # what a user saves is a spec as it is
    assert main(["sweep", "--print-spec", "qiuck"]) == 2  # a usage error, naming the names
    assert "quick" in capsys.readouterr().err


def test_every_shipped_gate_config_loads():
    assert {"starter", "release", "smollm2"} <= set(gate_examples())
    for name in gate_examples():
        load_config(SHIPPED / "gate" / f"{name}.toml")


def test_the_starter_names_every_key_of_a_gate_config():
    text = gate_text()
    keys = [(table, key) for table, names in _TABLE_KEYS.items() for key in names]
    keys += [("thresholds", name) for name in Thresholds.__dataclass_fields__]
    keys += [("capability", name) for name in ("fluency", "perplexity_file", "mc_file", "shots", "limit")]
    assert set(Capability.__dataclass_fields__) >= {"fluency", "perplexity_file", "mc_file", "shots", "limit"}
    for table, key in keys:
        assert f"[{table}]" in text, table
        assert re.search(rf"^#? ?{key} = ", text, re.M), f"the starter does not show {table}.{key}"


def _candidate_forms(text: str) -> dict[str, bool]:
    """form -> accepted today, as the starter's [candidate] comment says."""
    found = re.findall(r"^#\s+(\w+) = \S+\s+(accepted today|NOT accepted yet)", text, re.M)
    return {form: mark == "accepted today" for form, mark in found}


def test_the_starter_marks_the_candidate_forms_truthfully():
    text = gate_text()
    forms = _candidate_forms(text)
    assert set(forms) == {"checkpoint", "adapter", "source"}
    data = tomllib.loads(text)
    for form, accepted in forms.items():
        changed = {**data, "candidate": {form: "release-candidate"}}
        if accepted:
            assert config_from_dict(changed).name == "release", form
        else:
            with pytest.raises(GateConfigError, match=f"candidate.{form}"):
                config_from_dict(changed)


def test_gate_init_writes_the_starter_once(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VISAGE_SERVER", raising=False)
    assert main(["gate", "init"]) == 0
    assert capsys.readouterr().out.strip() == "gate.toml"
    written = tmp_path / "gate.toml"
    assert written.read_text() == gate_text()
    config, _ = load_config(written)
    assert config.checkpoint == "" and config.thresholds.any()
    written.write_text("mine")
    assert main(["gate", "init"]) == 2  # never over a file
    assert written.read_text() == "mine" and "exists" in capsys.readouterr().err
    assert main(["gate", "init", "-"]) == 0
    assert capsys.readouterr().out == gate_text()
    assert main(["--json", "gate", "init", "ci/gate.toml"]) == 2  # no such folder: said, not a traceback
    assert "cannot write" in capsys.readouterr().err
    assert main(["gate", "gate.toml", "extra"]) == 2
    assert main(["gate", "gate.toml"]) == 2 and "--server" in capsys.readouterr().err
