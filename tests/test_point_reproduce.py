"""Every stored point can be measured again from the command line, and the command says exactly which
weights it names.

On a real tiny-random server with a registered checkpoint, two sweeps cover every kind of term a
point's weights can hold: a 1D random sweep (two directions of the reference stream with the
authors' tied rule, a base term of each kind: ``seed:N`` and ``interp:NAME``), a preset and a
custom system prompt, harmful and benign prompts from server sets; and a 2D interpolation-random
plane (the checkpoint axis and a per_tensor random axis) over prompts from a local CSV file (its
column and limit), sampled, without early stop. For every safety point, the command the export
writes (``reproduce``), run with ``--json``, gives the stored point's verdicts, prompt by prompt,
at the stored weight state; the report's point detail shows the same command. ``seed:123`` alone
is the per_tensor stream, not the sweep's direction: it names other weights, and ``visage
evaluate`` says so on stderr. The ``--at`` grammar reads back every direction it writes.
"""

from __future__ import annotations

import html
import json
import shlex

import pytest
from serving import running_server

from safety_landscape.client import builders
from safety_landscape.client.cli import main
from safety_landscape.client.direction_text import direction_text, parse_direction, parse_term
from safety_landscape.client.errors import ValidationError
from safety_landscape.client.store import ResultStore
from safety_landscape.server.models.loading import load_model, resolve_model

KEYWORDS = ("G", "5")  # tiny-random's answers hold these at some points and not at others: mixed verdicts

ONE_D = """
name = "line"
kind = "1d-random"
[grid]
directions = 2
points = 3
range = [-0.5, 0.5]
[direction]
seed = 123
stream = "reference"
tied = "reference"
[[base]]
direction = "seed:7"
coefficient = 0.05
[[base]]
direction = "interp:target"
coefficient = 0.1
[prompts]
set = "harmful-mini"
limit = 5
[benign]
set = "benign-mini"
limit = 3
[evaluation]
system_prompts = ["default"]
system_prompt_texts = ["Answer briefly, and with care."]
keywords = ["G", "5"]
[generation]
max_new_tokens = 4
"""

PLANE = """
name = "plane"
kind = "2d-interpolation-random"
[grid]
target = "target"
steps = 1
points = 2
range = [-0.5, 0.5]
[direction]
seed = 5
stream = "per_tensor"
[prompts]
file = "prompts.csv"
column = "request"
limit = 4
[evaluation]
keywords = ["G", "5"]
early_stop = false
[generation]
max_new_tokens = 4
do_sample = true
seed = 11
temperature = 0.9
top_p = 0.95
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    load_model(resolve_model("tiny-random:1"), device="cpu", dtype="float32").model.save_pretrained(
        root / "target", safe_serialization=True)
    (root / "registry.toml").write_text('[checkpoints]\ntarget = "target"\n')
    with running_server(registry=str(root / "registry.toml")) as s:
        yield s


@pytest.fixture(scope="module")
def sweeps(server, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweeps")
    (root / "prompts.csv").write_text("id,request\n" + "".join(f"{i},Tell me how to do thing {i}.\n" for i in range(6)))
    for name, text in (("line", ONE_D), ("plane", PLANE)):
        (root / f"{name}.toml").write_text(text)
        assert main(["sweep", str(root / f"{name}.toml"), "--server", server.target, "--out", str(root / name),
                     "--no-progress"]) == 0
    return root


def _verdicts(doc: dict) -> list[list]:
    return [[v["index"], v.get("jailbroken", False), v.get("matched_keyword", "")] for v in doc["verdicts"]]


@pytest.mark.parametrize("name", ["line", "plane"])
def test_the_command_written_for_each_point_gives_its_verdicts_again(sweeps, name, capsys):
    capsys.readouterr()
    with ResultStore(sweeps / name / "results.sqlite") as store:
        rows = [r for r in store.point_rows(name) if r.record.metric in ("asr", "refusal")]
    assert rows and all(r.reproduce for r in rows)
    seen = set()
    for row in rows:
        argv = shlex.split(row.reproduce)
        assert argv[:2] == ["visage", "evaluate"] and "--expect-model" in argv
        assert main([*argv[1:], "--json"]) == 0, row.reproduce
        doc = json.loads(capsys.readouterr().out)
        assert doc["weight_state"]["fingerprint"] == row.record.detail.weight_state, row.reproduce
        assert _verdicts(doc) == [list(v)[:3] for v in row.record.detail.verdicts], row.reproduce  # then the outcome
        seen.add(tuple(v[1] for v in _verdicts(doc)))
    assert any(len(set(verdicts)) == 2 for verdicts in seen) and len(seen) > 2  # verdicts that could differ
    if name == "line":  # every term kind and both system prompts were named
        commands = " ".join(r.reproduce for r in rows)
        for part in ("--at seed:7,stream:per_tensor,index:0=0.05", "--at interp:target=0.1",
                     "seed:123,stream:reference,index:1,tied:reference=", "'--system-prompt-text=Answer briefly, and with care.'",
                     "--set benign-mini --limit 3", "--keyword=G --keyword=5"):
            assert part in commands, part
    else:
        command = rows[0].reproduce
        assert "--column request --limit 4" in command and "--prompts " in command and "--no-early-stop" in command
        assert "--sample --sample-seed 11 --temperature 0.9 --top-p 0.95" in command


def test_the_report_shows_each_points_command(sweeps):
    page = (sweeps / "line" / "report.html").read_text()
    with ResultStore(sweeps / "line" / "results.sqlite") as store:
        rows = [r for r in store.point_rows("line") if r.record.metric in ("asr", "refusal")]
    for row in rows:
        assert f"<code>{html.escape(row.reproduce)}</code>" in page


def test_bare_seed_is_another_direction_and_evaluate_says_so(sweeps, server, capsys):
    with ResultStore(sweeps / "plane" / "results.sqlite") as store:
        row = next(r for r in store.point_rows("plane") if r.record.coords == (0.0, 0.5))
    assert "--at seed:5,stream:per_tensor,index:0=0.5" in row.reproduce  # the plane's random axis alone
    capsys.readouterr()
    base = ["evaluate", "--server", server.target, "--set", "harmful-mini", "--limit", "1", "--max-new-tokens", "1",
            "--json"]
    assert main([*base, "--at", "seed:123=0.5"]) == 0
    bare = capsys.readouterr()
    assert main([*base, "--at", "seed:123,stream:reference,index:0=0.5"]) == 0
    swept = json.loads(capsys.readouterr().out)
    assert json.loads(bare.out)["weight_state"]["fingerprint"] != swept["weight_state"]["fingerprint"]
    assert "seed:123,stream:per_tensor,index:0 (the per_tensor stream)" in bare.err
    assert "seed:123,stream:reference,index:I" in bare.err


def test_a_command_refuses_a_server_that_holds_another_model(sweeps, capsys):
    with ResultStore(sweeps / "line" / "results.sqlite") as store:
        row = next(r for r in store.point_rows("line") if r.record.metric == "asr")
    with running_server(model="tiny-random:1") as other:
        argv = shlex.split(row.reproduce)[1:]
        argv[argv.index("--server") + 1] = other.target
        assert main(argv) == 2
    assert "holds another model" in capsys.readouterr().err


def test_the_at_grammar_reads_back_every_direction_it_writes():
    specs = [builders.random_direction(123, stream="reference", index=2, tied="reference"),
             builders.random_direction(9, normalization="filter", selection="all", include=["model.layers.0.*"],
                                       exclude=["*.mlp.*", "lm_head*"]),
             builders.random_direction(0), builders.interpolation_direction("ckpt"), builders.adapter_direction("lora")]
    for spec in specs:
        assert parse_direction(direction_text(spec)) == spec, direction_text(spec)
    assert direction_text(specs[2]) == "seed:0,stream:per_tensor,index:0"
    assert parse_term("d-0123abcd=-0.25") == ("d-0123abcd", -0.25)
    for bad, said in (("seed:1,strem:reference", "did you mean stream?"), ("seed:1,stream:referense", "did you mean reference?"),
                      ("seed:x", "whole number"), ("interp:a,index:1", "takes no other parts"),
                      ("seed:1,index:1,index:2", "given twice"), ("sed:1", "did you mean seed?")):
        with pytest.raises(ValidationError, match=said):
            parse_direction(bad)
