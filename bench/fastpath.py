"""Our fast path at the Engine level: absolute weights, one large batch, keyword early stop.

Per grid point: ``weights.apply`` (theta0 + a*d from the pristine copy, fp32 accumulation, the
model dtype), then ``Engine.evaluate`` (chat format -> BatchGenerator -> keyword judge) with all
prompts in one batch. The same run without early stop gives the verdicts early stop must equal.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from safety_landscape.server.engine.chat import ChatFormat
from safety_landscape.server.engine.evaluation import EvalSettings
from safety_landscape.server.engine.generation import GenerationParams
from safety_landscape.server.engine.prompts import PromptSet


@dataclass
class FastPoint:
    coefficient: float
    apply_seconds: float
    prefill_seconds: float
    decode_seconds: float
    judge_seconds: float
    other_seconds: float  # encode + bookkeeping: the evaluate call minus prefill, decode, judge
    computed_tokens: int  # rows x steps the model ran (the batch shrinks as rows finish)
    prefill_tokens: int  # token positions the prefill ran (a prefix shared by the batch counted once)
    screened_steps: int  # decode steps whose token the screened LM head picked (greedy_head.py)
    tokens_saved: int
    asr: float
    jailbroken: list[bool]
    matched: list[str]
    texts: list[str]
    finish: list[str]
    fingerprint: str

    @property
    def seconds(self) -> float:
        return self.apply_seconds + self.prefill_seconds + self.decode_seconds + self.judge_seconds + self.other_seconds


def run_fast(
    engine,
    direction_id: str,
    coefficients: Sequence[float],
    prompt_set: PromptSet,
    chat_format: ChatFormat,
    max_new_tokens: int,
    *,
    early_stop: bool,
) -> list[FastPoint]:
    settings = EvalSettings(
        prompt_set=prompt_set,
        system_prompt=None,
        chat_format=chat_format,
        params=GenerationParams(max_new_tokens=max_new_tokens),
        early_stop=early_stop,
    )
    points = []
    for coef in coefficients:
        state = engine.weights.apply(engine.weights.canonical_terms([(direction_id, coef)]))
        started = time.perf_counter()
        outcome = engine.evaluate(settings)
        wall = time.perf_counter() - started
        s = outcome.stats
        points.append(
            FastPoint(
                coefficient=coef,
                apply_seconds=state.apply_seconds,
                prefill_seconds=s.prefill_seconds,
                decode_seconds=s.decode_seconds,
                judge_seconds=outcome.judge_seconds,
                other_seconds=max(0.0, wall - s.prefill_seconds - s.decode_seconds - outcome.judge_seconds),
                computed_tokens=s.generated_tokens,
                prefill_tokens=s.prefill_tokens,
                screened_steps=s.screened_steps,
                tokens_saved=outcome.tokens_saved,
                asr=outcome.asr,
                jailbroken=[v.jailbroken for v in outcome.verdicts],
                matched=[v.matched_keyword for v in outcome.verdicts],
                texts=[v.result.text for v in outcome.verdicts],
                finish=[v.result.finish_reason for v in outcome.verdicts],
                fingerprint=state.fingerprint,
            )
        )
    return points


def summarise(points: Sequence[FastPoint]) -> dict[str, float]:
    return {
        "apply_s": sum(p.apply_seconds for p in points),
        "prefill_s": sum(p.prefill_seconds for p in points),
        "decode_s": sum(p.decode_seconds for p in points),
        "judge_s": sum(p.judge_seconds for p in points),
        "other_s": sum(p.other_seconds for p in points),
        "total_s": sum(p.seconds for p in points),
        "computed_tokens": sum(p.computed_tokens for p in points),
        "prefill_tokens": sum(p.prefill_tokens for p in points),
        "screened_steps": sum(p.screened_steps for p in points),
        "tokens_saved": sum(p.tokens_saved for p in points),
    }
