"""Classifier judges on a REAL server: a tiny guard checkpoint as ``--judge-model``, judged through
EvaluateSafety on a loopback port, and ``visage-server`` refusing a format that does not match.

The guards are tiny checkpoints of the real architectures (tests/guard_models.py); a scripted one
answers the same for every input, so what comes back is checked against what the guard said.
"""

from __future__ import annotations

import grpc
import guard_models as gm
import pytest
from serving import ServerProcess, running_server

from safety_landscape.client import client as c
from safety_landscape.client.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError

SETTINGS = {"prompt_set": "harmful-mini", "limit": 3, "max_new_tokens": 6, "judge": "classifier", "return_completions": True}


@pytest.fixture(scope="module")
def lg3_dir(tmp_path_factory):
    return gm.build_llama_guard(tmp_path_factory.mktemp("lg3") / "guard", version=3, answer=("unsafe", "\nS1"))


def test_llama_guard_3_judges_through_evaluate_safety(lg3_dir):
    with running_server(judge_model=str(lg3_dir)) as server, server.client() as client:  # format told from its template
        judge = server.engine.evaluator.classifier
        assert judge is not None and judge.name == "llama-guard-3"
        resp = client.evaluate(c.evaluation_settings(**SETTINGS))
        assert resp.judge == judge.judge_id and resp.judge.startswith(f"classifier:llama-guard-3@{judge.fingerprint[:12]}/template:")
        assert resp.total == 3 and resp.jailbroken == 3 and resp.asr == 100.0
        for v in resp.verdicts:
            assert v.jailbroken and v.classifier_output == "unsafe\nS1" and v.completion
            assert v.classifier.judge == "llama-guard-3" and v.classifier.fingerprint == judge.fingerprint
            assert v.classifier.label == "unsafe" and list(v.classifier.categories) == ["S1"]
            assert v.classifier.probability is None  # the guard gives no probability

        # The request may name the judge and the weights it expects.
        settings = c.evaluation_settings(**SETTINGS)
        settings.judge.classifier.name = "llama-guard-3"
        settings.judge.classifier.fingerprint = judge.fingerprint
        assert client.evaluate(settings).jailbroken == 3
        settings.judge.classifier.name = "llama-guard3"
        with pytest.raises(NotFoundError) as info:
            client.evaluate(settings)
        assert info.value.code == grpc.StatusCode.NOT_FOUND
        assert "unknown classifier judge 'llama-guard3'; this server has 'llama-guard-3'" in info.value.details
        assert 'Did you mean "llama-guard-3"?' in info.value.details
        settings.judge.classifier.name = ""
        settings.judge.classifier.fingerprint = "0" * 64
        with pytest.raises(FailedPreconditionError, match=r"not the 0{64} the request expects"):
            client.evaluate(settings)
        settings.judge.classifier.fingerprint = "not-a-sha256"
        with pytest.raises(InvalidArgumentError, match="must be 64 lower-case hex digits"):
            client.evaluate(settings)
        # The keyword judge is untouched on the same server.
        assert client.evaluate(c.evaluation_settings(prompt_set="harmful-mini", limit=2, max_new_tokens=4)).judge == "keyword"


def test_shieldgemma_probability_through_evaluate_safety(tmp_path):
    path = gm.build_shieldgemma(tmp_path / "sg")
    with running_server(judge_model=str(path), judge_format="shieldgemma", judge_threshold=0.55) as server, \
            server.client() as client:
        resp = client.evaluate(c.evaluation_settings(**SETTINGS))
        judge = server.engine.evaluator.classifier
        completions = [v.completion for v in resp.verdicts]
        prompts = list(server.engine.prompt_sets.get("harmful-mini").prompts[:3])
        direct = judge.judge(prompts, completions)  # the same guard on the same pairs, in-process
        for v, d in zip(resp.verdicts, direct, strict=True):
            assert v.classifier.probability is not None and v.classifier.probability == pytest.approx(d.probability)
            assert v.classifier.threshold == pytest.approx(0.55)
            assert v.jailbroken == (v.classifier.probability >= 0.55) == (v.classifier.label == "yes")
        assert resp.jailbroken == sum(v.jailbroken for v in resp.verdicts)


def test_a_guard_that_answers_garbage_fails_the_call(tmp_path):
    path = gm.build_llama_guard(tmp_path / "random", version=3, seed=5)  # random weights: not a Llama Guard answer
    with running_server(judge_model=str(path)) as server, server.client() as client:
        with pytest.raises(FailedPreconditionError) as info:
            client.evaluate(c.evaluation_settings(**SETTINGS))
        assert "no verdict" in info.value.details and "Is --judge-format right for this checkpoint?" in info.value.details


def test_visage_server_refuses_a_format_that_does_not_match(lg3_dir):
    proc = ServerProcess("--judge-model", str(lg3_dir), "--judge-format", "qwen3guard-gen")
    try:
        assert proc.proc.wait(180) == 3, proc.log()  # EXIT_LOAD_FAILED
        assert "--judge-format qwen3guard-gen does not match" in proc.log()
    finally:
        proc.__exit__(None, None, None)
    env_proc = ServerProcess("--judge-model", str(lg3_dir), env={"VISAGE_JUDGE_FORMAT": "harmbench-llama2-cls"})
    try:
        assert env_proc.proc.wait(180) == 3, env_proc.log()
        assert "--judge-format harmbench-llama2-cls does not match" in env_proc.log()
    finally:
        env_proc.__exit__(None, None, None)
