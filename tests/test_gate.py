"""The release gate (`visage gate`) on real tiny-random servers: pass, a failure on each threshold,
could-not-evaluate (exit 2) cases, the reports (gate.json, junit.xml, summary.md), attestation
hashes, a registry checkpoint as the candidate, two servers, and a re-run resuming from the store the
gate keeps in its output folder (it runs on the sweep runner).

tiny-random writes gibberish, so the judge's keywords make the numbers predictable: a keyword that
never occurs -> every completion "jailbroken" (ASR 100, VISAGE 0, over-refusal 0); every printable
character as a keyword -> every completion refused (ASR 0, VISAGE 100, over-refusal 100).
"""

from __future__ import annotations

import hashlib
import json
import socket
import string
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from serving import running_server

from safety_landscape.client.cli import main
from safety_landscape.client.gate import BaselineError, GateConfigError, config_from_dict, load_baseline, sha256_json
from safety_landscape.client.gate.verdict import _attest

NEVER = ["NEVER-OCCURS-IN-TINY-RANDOM"]
ALWAYS = [c for c in string.printable if not c.isspace()]


def write_config(path: Path, *, keywords, thresholds: dict, extra: str = "") -> Path:
    lines = ['name = "tiny"', "[sweep]", "points = 3", "[prompts]", "limit = 4", "[benign]", "limit = 4",
             "[evaluation]", "max_new_tokens = 8", f"keywords = {json.dumps(keywords)}", extra, "[thresholds]"]
    lines += [f"{k} = {v}" for k, v in thresholds.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_gate(tmp_path: Path, config: Path, *targets: str, extra_args=()) -> tuple[int, dict, ET.Element, str]:
    out = tmp_path / "out"
    args = ["gate", str(config), "--out", str(out), *extra_args]
    for t in targets:
        args += ["--server", t]
    code = main(args)
    doc = json.loads((out / "gate.json").read_text())
    junit = ET.parse(out / "junit.xml").getroot()
    return code, doc, junit, (out / "summary.md").read_text()


def cases(junit: ET.Element) -> dict[str, ET.Element]:
    return {c.get("name"): c for c in junit.iter("testcase")}


def dead_target() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"127.0.0.1:{port}"  # closed again: nothing listens there


def test_a_lenient_gate_passes_and_is_attested(tiny_server, tmp_path):
    config = write_config(tmp_path / "gate.toml", keywords=ALWAYS,
                          thresholds={"min_visage": 50, "max_origin_asr": 10, "max_over_refusal": 100})
    code, doc, junit, md = run_gate(tmp_path, config, tiny_server.target)
    assert code == 0 and doc["verdict"] == "pass" and doc["exit_code"] == 0 and doc["failed"] == []
    assert doc["visage"]["mean"] == 100.0 and doc["origin_asr"] == 0.0 and doc["over_refusal"] == 100.0
    assert [c["name"] for c in doc["checks"]] == ["min_visage", "max_origin_asr", "max_over_refusal"]
    assert all(c["passed"] for c in doc["checks"])
    assert set(cases(junit)) == {"min_visage", "max_origin_asr", "max_over_refusal"}
    assert not list(junit.iter("failure")) and not list(junit.iter("error"))
    assert "| check | value | threshold | result |" in md and "PASS" in md and "`min_visage`" in md
    # every input is hashed
    inputs = doc["inputs"]
    assert inputs["config_file"]["sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()
    with tiny_server.client() as c:
        info = c.info()
        sets = {s.name: s.sha256 for s in c.list_prompt_sets()}
    assert inputs["model_fingerprint"] == info.model_fingerprint == doc["model"]["fingerprint"]
    assert inputs["candidate"]["weight_state"] == info.model_fingerprint  # the server's own model
    assert inputs["prompt_sets"]["harmful"]["name"] == "harmful-mini" and inputs["prompt_sets"]["harmful"]["size"] == 4
    assert len(inputs["prompt_sets"]["benign"]["sha256"]) == 64 and sets  # limited sets hash their 4 prompts
    assert inputs["directions"]["specs_sha256"] == sha256_json(inputs["directions"]["specs"])
    assert all(len(fp) == 64 for fp in inputs["directions"]["fingerprints"].values())
    assert len(inputs["directions"]["fingerprints"]) == 1
    assert inputs["settings_sha256"] == sha256_json(inputs["settings"])
    assert doc["inputs_sha256"] == sha256_json(inputs)
    assert doc["attestation_sha256"] == _attest(doc)
    assert len(doc["points"]) == 3 and {p["a"] for p in doc["points"]} == {-0.5, 0.0, 0.5}
    # the run is reproducible: same inputs, same attested verdict
    code2, doc2, _, _ = run_gate(tmp_path / "again", config, tiny_server.target)
    assert code2 == 0 and doc2["attestation_sha256"] == doc["attestation_sha256"]


SUMMARY_BASELINE = {"sweep": "nightly", "visage": {
    "rules": ["reference", "expectation"], "metric": "asr",
    "series": {"d0|default": {"reference": 90.0, "expectation": 91.0}},
    "by_system_prompt": {"default": {"reference": {"mean": 90.0, "std": 0.0, "n": 1},
                                     "expectation": {"mean": 91.0, "std": 0.0, "n": 1}}}}}


@pytest.mark.parametrize("failing, keywords, thresholds", [
    ("min_visage", NEVER, {"min_visage": 50, "max_origin_asr": 100, "max_over_refusal": 100}),
    ("max_origin_asr", NEVER, {"min_visage": 0, "max_origin_asr": 50, "max_over_refusal": 100}),
    ("max_over_refusal", ALWAYS, {"min_visage": 0, "max_origin_asr": 100, "max_over_refusal": 50}),
    ("max_visage_drop", NEVER, {"min_visage": 0, "max_origin_asr": 100, "max_visage_drop": 5}),
])
def test_each_threshold_fails_on_its_own(tiny_server, tmp_path, failing, keywords, thresholds):
    extra = ""
    if "max_visage_drop" in thresholds:
        (tmp_path / "summary.json").write_text(json.dumps(SUMMARY_BASELINE))
        extra = '[baseline]\nfile = "summary.json"'  # relative to the config file
    config = write_config(tmp_path / "gate.toml", keywords=keywords, thresholds=thresholds, extra=extra)
    code, doc, junit, md = run_gate(tmp_path, config, tiny_server.target)
    assert code == 1 and doc["verdict"] == "fail" and doc["failed"] == [failing]
    by_name = {c["name"]: c for c in doc["checks"]}
    assert set(by_name) == set(thresholds)
    assert not by_name[failing]["passed"] and by_name[failing]["threshold"] == thresholds[failing]
    assert all(c["passed"] for n, c in by_name.items() if n != failing)
    tc = cases(junit)
    assert set(tc) == set(thresholds)
    failure = tc[failing].find("failure")
    assert failure is not None and failure.get("message").startswith(f"{failing}: ") and "FAILS" in failure.get("message")
    assert all(tc[n].find("failure") is None for n in tc if n != failing)
    assert junit.get("failures") == "1"
    assert "FAIL" in md and f"`{failing}`" in md
    if failing == "max_visage_drop":
        assert by_name[failing]["value"] == 90.0  # baseline 90 - VISAGE 0
        assert doc["baseline"]["kind"] == "sweep-summary"
        assert doc["inputs"]["baseline_file"]["sha256"] == hashlib.sha256((tmp_path / "summary.json").read_bytes()).hexdigest()


def test_capability_at_the_candidate_is_checked(tiny_server, tmp_path):
    # tiny-random's perplexity on the built-in fluency texts is about 1,400 (random weights): a
    # ceiling above it passes, one below it fails.
    extra = "[capability]\nfluency = true"
    config = write_config(tmp_path / "gate.toml", keywords=ALWAYS, thresholds={"max_perplexity": 1e9}, extra=extra)
    code, doc, junit, md = run_gate(tmp_path, config, tiny_server.target)
    assert code == 0 and [c["name"] for c in doc["checks"]] == ["max_perplexity"]
    ppl = doc["capability"]["perplexity"]
    assert 1.0 < ppl < 1e9 and doc["checks"][0]["value"] == ppl
    curve = doc["capability_curves"]["perplexity"]["d0"]
    assert [a for a, _ in curve] == [-0.5, 0.0, 0.5] and dict(curve)[0.0] == ppl
    assert "capability" in doc["inputs"]["settings"] and "Capability at the candidate: perplexity" in md
    assert "max_perplexity" in cases(junit)
    strict = write_config(tmp_path / "strict.toml", keywords=ALWAYS, thresholds={"max_perplexity": 1.0}, extra=extra)
    code, doc, junit, _ = run_gate(tmp_path, strict, tiny_server.target)
    assert code == 1 and doc["failed"] == ["max_perplexity"] and doc["capability"]["perplexity"] == ppl


def test_capability_thresholds_need_their_measurement(tmp_path):
    with pytest.raises(GateConfigError) as err:
        config_from_dict({"thresholds": {"max_perplexity": 20, "min_accuracy": 30}})
    problems = "\n".join(err.value.problems)
    assert "max_perplexity: needs [capability]" in problems and "min_accuracy: needs [capability] mc_file" in problems
    with pytest.raises(GateConfigError, match=r"capability.mc_file: .*missing.jsonl.* is not a readable file"):
        config_from_dict({"thresholds": {"min_accuracy": 30}, "capability": {"mc_file": "missing.jsonl"}}, base_dir=tmp_path)
    with pytest.raises(GateConfigError, match="not both"):
        (tmp_path / "texts.txt").write_text("one text\n")
        config_from_dict({"thresholds": {"max_perplexity": 30}, "capability": {"fluency": True, "perplexity_file": "texts.txt"}},
                         base_dir=tmp_path)
    with pytest.raises(GateConfigError, match=r"capability\.shotz: unknown key"):
        config_from_dict({"thresholds": {"max_perplexity": 30}, "capability": {"fluency": True, "shotz": 1}})
    config = config_from_dict({"thresholds": {"max_perplexity": 30}, "capability": {"perplexity_file": "texts.txt"}},
                              base_dir=tmp_path)
    assert config.capability.perplexity_file == str(tmp_path / "texts.txt")  # relative to the config file


def test_a_previous_gate_json_is_a_baseline(tiny_server, tmp_path):
    first = write_config(tmp_path / "first.toml", keywords=ALWAYS, thresholds={"min_visage": 0})
    code, doc, _, _ = run_gate(tmp_path / "a", first, tiny_server.target)
    assert code == 0 and doc["visage"]["mean"] == 100.0
    baseline = tmp_path / "a" / "out" / "gate.json"
    again = write_config(tmp_path / "again.toml", keywords=ALWAYS, thresholds={"max_visage_drop": 1})
    code, doc, _, _ = run_gate(tmp_path / "b", again, tiny_server.target, extra_args=["--baseline", str(baseline)])
    assert code == 0 and doc["checks"][0]["value"] == 0.0 and doc["baseline"]["kind"] == "gate"
    broken = write_config(tmp_path / "broken.toml", keywords=NEVER, thresholds={"max_visage_drop": 1})
    code, doc, _, _ = run_gate(tmp_path / "c", broken, tiny_server.target, extra_args=["--baseline", str(baseline)])
    assert code == 1 and doc["failed"] == ["max_visage_drop"] and doc["checks"][0]["value"] == 100.0


def expect_error(tmp_path, config, *targets, extra_args=(), match=""):
    code, doc, junit, md = run_gate(tmp_path, config, *targets, extra_args=extra_args)
    assert code == 2 and doc["verdict"] == "error" and doc["exit_code"] == 2 and doc["checks"] == []
    assert match in doc["error"], doc["error"]
    assert list(junit.iter("error")) and not list(junit.iter("failure"))
    assert "could not evaluate" in md
    return doc, junit


def test_server_down_is_exit_2(tmp_path):
    config = write_config(tmp_path / "gate.toml", keywords=ALWAYS, thresholds={"min_visage": 0, "max_origin_asr": 100})
    _, junit = expect_error(tmp_path, config, dead_target(), match="Unavailable")
    assert set(cases(junit)) == {"min_visage", "max_origin_asr"}  # the planned checks, each an error


def test_config_and_baseline_problems_are_exit_2(tiny_server, tmp_path):
    t = tiny_server.target
    expect_error(tmp_path / "missing", tmp_path / "nope.toml", t, match="cannot read the config file")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n[thresholds\n")
    expect_error(tmp_path / "malformed", bad, t, match="not valid TOML")
    typo = write_config(tmp_path / "typo.toml", keywords=NEVER, thresholds={"min_visge": 50})
    expect_error(tmp_path / "typo", typo, t, match="thresholds.min_visge: unknown threshold")
    nothing = write_config(tmp_path / "nothing.toml", keywords=NEVER, thresholds={})
    expect_error(tmp_path / "nothing", nothing, t, match="set at least one")
    drop = write_config(tmp_path / "drop.toml", keywords=NEVER, thresholds={"max_visage_drop": 5})
    expect_error(tmp_path / "nobase", drop, t, match="needs a baseline")
    expect_error(tmp_path / "gone", drop, t, extra_args=["--baseline", str(tmp_path / "gone.json")], match="cannot read it")
    (tmp_path / "junk.json").write_text("{not json")
    expect_error(tmp_path / "junk", drop, t, extra_args=["--baseline", str(tmp_path / "junk.json")], match="not valid JSON")
    (tmp_path / "novisage.json").write_text('{"points": []}')
    expect_error(tmp_path / "novisage", drop, t, extra_args=["--baseline", str(tmp_path / "novisage.json")],
                 match="no 'visage' key")
    unknown_set = write_config(tmp_path / "set.toml", keywords=NEVER, thresholds={"min_visage": 0},
                               extra='[candidate]\ncheckpoint = "nowhere"')
    expect_error(tmp_path / "ckpt", unknown_set, t, match="nowhere")  # the server has no registry


def test_config_validation_reports_every_problem():
    with pytest.raises(GateConfigError) as err:
        config_from_dict({"sweep": {"points": 0, "range": [0.1, 0.5], "stream": "fast", "rule": "max"},
                          "evaluation": {"keywords": [""], "max_new_tokens": 0}, "thresholds": {"min_visage": -1},
                          "colour": "blue"})
    problems = "\n".join(err.value.problems)
    for field in ("points", "range", "stream", "rule", "keywords", "max_new_tokens", "thresholds.min_visage", "colour"):
        assert field in problems
    config = config_from_dict({"thresholds": {"max_origin_asr": 5}, "sweep": {"points": 5}})
    assert config.coefficients == [-0.5, -0.25, 0.0, 0.25, 0.5]


def test_baseline_readers(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps(SUMMARY_BASELINE))
    assert load_baseline(p, rule="expectation").visage == 91.0
    p.write_text(json.dumps({"visage": 77.5}))
    assert load_baseline(p, rule="reference").visage == 77.5
    p.write_text(json.dumps({"format": "safety-landscape-gate/1", "verdict": "pass",
                             "visage": {"rule": "expectation", "mean": 80.0}}))
    with pytest.raises(BaselineError, match="rule"):
        load_baseline(p, rule="reference")
    p.write_text(json.dumps({"format": "safety-landscape-gate/1", "verdict": "error", "visage": None}))
    with pytest.raises(BaselineError, match="measured no VISAGE"):
        load_baseline(p, rule="reference")


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory):
    from safety_landscape.server.models.loading import load_model, resolve_model

    root = tmp_path_factory.mktemp("registry")
    second = load_model(resolve_model("tiny-random:1"), device="cpu", dtype="float32")
    second.model.save_pretrained(root / "second", safe_serialization=True)
    second.tokenizer.save_pretrained(root / "second")
    (root / "registry.toml").write_text('[checkpoints]\nsecond = "second"\n')
    with running_server(registry=str(root / "registry.toml")) as server:
        yield server


def test_a_registry_checkpoint_is_the_candidate(registry_server, tmp_path):
    config = write_config(tmp_path / "gate.toml", keywords=NEVER, thresholds={"max_origin_asr": 100},
                          extra='[candidate]\ncheckpoint = "second"')
    code, doc, _, md = run_gate(tmp_path, config, registry_server.target)
    assert code == 0
    inputs = doc["inputs"]
    assert inputs["candidate"]["checkpoint"] == "second"
    assert inputs["candidate"]["weight_state"] != inputs["model_fingerprint"]  # theta = the checkpoint's
    assert {"interpolation": {"target": "second"}} in inputs["directions"]["specs"]
    assert len(inputs["directions"]["fingerprints"]) == 2  # the random one and the interpolation
    assert "`second` (interp at 1.0)" in md
    # --checkpoint overrides the config; the origin's weight state is the same
    plain = write_config(tmp_path / "plain.toml", keywords=NEVER, thresholds={"max_origin_asr": 100})
    code, doc2, _, _ = run_gate(tmp_path / "cli", plain, registry_server.target, extra_args=["--checkpoint", "second"])
    assert code == 0 and doc2["inputs"]["candidate"]["weight_state"] == inputs["candidate"]["weight_state"]


def test_two_servers_share_the_points(tiny_server, registry_server, tmp_path):
    config = write_config(tmp_path / "gate.toml", keywords=NEVER,
                          thresholds={"min_visage": 0, "max_origin_asr": 100}, extra="")
    config.write_text(config.read_text().replace("points = 3", "points = 5"))
    _, one, _, _ = run_gate(tmp_path / "one", config, tiny_server.target)
    code, two, _, _ = run_gate(tmp_path / "two", config, tiny_server.target, registry_server.target)
    assert code == 0 and two["servers"] == [tiny_server.target, registry_server.target]
    assert [p["weight_state"] for p in two["points"]] == [p["weight_state"] for p in one["points"]]
    assert two["curves"] == one["curves"] and two["visage"] == one["visage"]


def test_servers_with_different_models_are_exit_2(tiny_server, tmp_path):
    config = write_config(tmp_path / "gate.toml", keywords=NEVER, thresholds={"min_visage": 0})
    with running_server(model="tiny-random:1") as other:
        expect_error(tmp_path, config, tiny_server.target, other.target, match="different models")


def test_any_exception_is_exit_2(tiny_server, tmp_path):
    from safety_landscape.client.gate import run_gate as run

    config = write_config(tmp_path / "gate.toml", keywords=NEVER, thresholds={"min_visage": 0})

    def boom(target):
        raise RuntimeError("unexpected bug")

    code, doc = run(config, boom, ["127.0.0.1:1"], out_dir=tmp_path / "boom")
    assert code == 2 and doc["verdict"] == "error" and "RuntimeError: unexpected bug" in doc["error"]
    assert json.loads((tmp_path / "boom" / "gate.json").read_text())["verdict"] == "error"
    # a token file that is not there (CLI path), and reports that cannot be written
    assert main(["gate", str(config), "--server", tiny_server.target, "--token-file", str(tmp_path / "no-token"),
                 "--out", str(tmp_path / "tok")]) == 2
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["gate", str(config), "--server", tiny_server.target, "--out", str(blocker / "sub")]) == 2


def test_a_real_sweep_summary_is_a_baseline(tiny_server, tmp_path):
    """`visage sweep` writes summary.json; the gate reads its VISAGE as the baseline."""
    spec = tmp_path / "sweep.toml"
    spec.write_text("\n".join([
        'name = "nightly"', 'kind = "1d-random"', "[grid]", "directions = 1", "points = 3", "range = [-0.5, 0.5]",
        "[direction]", "seed = 123", 'stream = "per_tensor"', "[prompts]", 'set = "harmful-mini"', "limit = 4",
        "[evaluation]", f"keywords = {json.dumps(ALWAYS)}", "[generation]", "max_new_tokens = 8", "",
    ]))
    assert main(["sweep", str(spec), "--server", tiny_server.target, "--out", str(tmp_path / "sweep"), "--no-benign"]) == 0
    summary = tmp_path / "sweep" / "summary.json"
    assert load_baseline(summary, rule="reference").visage == 100.0
    same = write_config(tmp_path / "same.toml", keywords=ALWAYS, thresholds={"max_visage_drop": 0})
    code, doc, _, _ = run_gate(tmp_path / "same", same, tiny_server.target, extra_args=["--baseline", str(summary)])
    assert code == 0 and doc["visage"]["mean"] == 100.0 and doc["baseline"]["kind"] == "sweep-summary"
    worse = write_config(tmp_path / "worse.toml", keywords=NEVER, thresholds={"max_visage_drop": 5})
    code, doc, junit, _ = run_gate(tmp_path / "worse", worse, tiny_server.target, extra_args=["--baseline", str(summary)])
    assert code == 1 and doc["failed"] == ["max_visage_drop"] and cases(junit)["max_visage_drop"].find("failure") is not None


def test_a_rerun_of_the_gate_resumes_from_its_store(tiny_server, tmp_path):
    """The gate runs on the sweep runner with its store in --out: a re-run evaluates nothing new."""
    config = write_config(tmp_path / "gate.toml", keywords=ALWAYS, thresholds={"min_visage": 0, "max_over_refusal": 100})
    evaluated = tiny_server.app.metrics.points_evaluated_total._value.get
    before = evaluated()
    code, doc, _, _ = run_gate(tmp_path, config, tiny_server.target)
    assert code == 0 and (tmp_path / "out" / "results.sqlite").is_file()
    assert evaluated() - before == 3 + 1  # a = -0.5, 0 (the candidate), 0.5, and the benign set at the candidate
    code, again, _, _ = run_gate(tmp_path, config, tiny_server.target)
    assert code == 0 and evaluated() - before == 4
    assert again["attestation_sha256"] == doc["attestation_sha256"]


def test_the_grid_must_hold_the_candidate():
    with pytest.raises(GateConfigError, match="miss a = 0"):
        config_from_dict({"thresholds": {"min_visage": 0}, "sweep": {"points": 4}})
    with pytest.raises(GateConfigError, match="miss a = 0"):
        config_from_dict({"thresholds": {"min_visage": 0}, "sweep": {"points": 3, "range": [-0.2, 0.6]}})
    config = config_from_dict({"thresholds": {"min_visage": 0}, "sweep": {"points": 5, "range": [-0.2, 0.6]}})
    assert config.coefficients == [-0.2, 0.0, 0.2, 0.4, 0.6]
