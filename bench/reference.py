"""The reference way of sweeping a 1D landscape (docs/method.md section 7, the authors' code), for timing.

What it reproduces, on purpose, because these are the costs the benchmark measures:
  - weights walked by CUMULATIVE steps on a CPU fp32 copy: ``w = theta0 + a0*d`` once, then
    ``w += step * d`` at every next grid point, and after each step the whole copy is written to
    the device model (cast to the model dtype);
  - HF ``model.generate`` over batches of 4 prompts (in prompt order), left padding, pad = eos,
    greedy, up to ``max_new_tokens`` (no keyword early stop: a batch only ends when every row
    has produced an end-of-sequence token or the length is reached);
  - the keyword judge applied afterwards to the decoded new tokens (special tokens skipped).
The prompts, the chat format and the direction tensors are the very ones the fast path uses, so
any verdict difference comes from the cumulative ``+=`` drift or from HF generate's numerics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from transformers import GenerationConfig

from safety_landscape.server.engine.judges import KeywordJudge, attack_success_rate


@dataclass
class ReferencePoint:
    coefficient: float
    apply_seconds: float
    generate_seconds: float
    judge_seconds: float
    computed_tokens: int  # rows x decode steps actually run (HF keeps finished rows in the batch)
    useful_tokens: int  # tokens up to and including each row's end-of-sequence
    asr: float
    jailbroken: list[bool]
    matched: list[str]
    texts: list[str]
    max_abs_drift: float  # max |w_reference - (theta0 + a*d)| over all tensors (fp32)
    extra: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.apply_seconds + self.generate_seconds + self.judge_seconds


class ReferenceSweep:
    """Holds the CPU fp32 copy and walks it along one direction, as the reference does."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        params: Sequence[tuple[str, torch.nn.Parameter]],
        direction: Callable[[str], torch.Tensor | None],
        *,
        batch_size: int = 4,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.params = list(params)
        self.batch_size = batch_size
        self.device = self.params[0][1].device
        # The reference keeps theta0 and d in fp32 on the CPU (a full copy of each).
        self.theta0 = {n: p.detach().to("cpu", torch.float32, copy=True) for n, p in self.params}
        self.direction: dict[str, torch.Tensor] = {}
        for name, _ in self.params:
            d = direction(name)
            if d is not None:
                self.direction[name] = d.detach().to("cpu", torch.float32)
        self.w: dict[str, torch.Tensor] | None = None
        self.at: float | None = None
        eos = model.generation_config.eos_token_id
        eos_ids = {eos} if isinstance(eos, int) else set(eos or ())
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        self.eos_ids = sorted(eos_ids)
        self.pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else self.eos_ids[0]

    # -- weights: cumulative walk on the CPU copy, then a full copy to the device --------------

    @torch.no_grad()
    def step_to(self, coefficient: float) -> float:
        """Move the CPU copy to `coefficient` by ONE += step (the first call starts at theta0)."""
        started = time.perf_counter()
        if self.w is None:
            self.w = {n: t.clone() for n, t in self.theta0.items()}
            delta = coefficient
        else:
            assert self.at is not None
            delta = coefficient - self.at
        for name, d in self.direction.items():
            self.w[name].add_(d, alpha=delta)  # w += step * d: rounding accumulates along the walk
        for name, param in self.params:
            param.copy_(self.w[name].to(device=param.device, dtype=param.dtype))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.at = coefficient
        return time.perf_counter() - started

    @torch.no_grad()
    def drift(self, coefficient: float) -> float:
        """max |w - (theta0 + a*d)| of the walked copy against the absolute weights (not timed)."""
        assert self.w is not None
        worst = 0.0
        for name, d in self.direction.items():
            exact = self.theta0[name].clone().add_(d, alpha=coefficient)
            worst = max(worst, float((self.w[name] - exact).abs().max()))
        return worst

    # -- generation: HF generate, batch 4, left padding, greedy, no keyword stop ---------------

    @torch.inference_mode()
    def generate(self, prompts: Sequence[list[int]], max_new_tokens: int) -> tuple[list[str], int, int]:
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_ids,
        )
        texts: list[str] = []
        computed = useful = 0
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            width = max(len(p) for p in chunk)
            ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, p in enumerate(chunk):
                ids[row, width - len(p) :] = torch.tensor(p, dtype=torch.long)
                mask[row, width - len(p) :] = 1
            out = self.model.generate(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device), generation_config=config
            )
            new = out[:, width:].cpu()
            computed += new.shape[0] * new.shape[1]
            rows = []
            for row in new.tolist():
                cut = next((i for i, t in enumerate(row) if t in self.eos_ids), None)
                useful += len(row) if cut is None else cut + 1
                rows.append(row)
            texts.extend(self.tokenizer.batch_decode(rows, skip_special_tokens=True))
        return texts, computed, useful

    def run_point(
        self, coefficient: float, prompts: Sequence[list[int]], max_new_tokens: int, judge: KeywordJudge
    ) -> ReferencePoint:
        apply_s = self.step_to(coefficient)
        t0 = time.perf_counter()
        texts, computed, useful = self.generate(prompts, max_new_tokens)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        gen_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        verdicts = [judge.judge(t) for t in texts]
        judge_s = time.perf_counter() - t1
        return ReferencePoint(
            coefficient=coefficient,
            apply_seconds=apply_s,
            generate_seconds=gen_s,
            judge_seconds=judge_s,
            computed_tokens=computed,
            useful_tokens=useful,
            asr=attack_success_rate([v.jailbroken for v in verdicts]),
            jailbroken=[v.jailbroken for v in verdicts],
            matched=[v.matched_keyword for v in verdicts],
            texts=texts,
            max_abs_drift=self.drift(coefficient),
        )


def direction_source(weights, direction_id: str) -> Callable[[str], torch.Tensor | None]:
    """Per-tensor fp32 components of a held direction (cached or regenerated), by tensor name."""
    held = weights.get(direction_id)

    def component(name: str) -> torch.Tensor | None:
        return weights._component(held, name)  # the bench reads the manager's own tensors

    return component


def mark_overwritten(weights) -> None:
    """Tell the manager the model no longer holds its applied state (the walk wrote the params),
    so its next ``apply`` recomputes every tensor from the pristine copy."""
    weights.current = (("<overwritten by the reference walk>", 0.0),)


def restore_pristine(weights) -> None:
    """Write theta0 back into the model after the reference walked it (the manager did not see it)."""
    with torch.no_grad():
        for name, param in weights.params:
            param.copy_(weights.pristine[name])
    weights.current = ()


def texts_of(points: Sequence[ReferencePoint]) -> list[list[str]]:
    return [p.texts for p in points]


def summarise(points: Sequence[ReferencePoint]) -> Mapping[str, float]:
    return {
        "apply_s": sum(p.apply_seconds for p in points),
        "generate_s": sum(p.generate_seconds for p in points),
        "judge_s": sum(p.judge_seconds for p in points),
        "total_s": sum(p.seconds for p in points),
        "computed_tokens": sum(p.computed_tokens for p in points),
        "useful_tokens": sum(p.useful_tokens for p in points),
    }
