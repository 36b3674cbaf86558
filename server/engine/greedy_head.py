"""Greedy decoding's LM head on a CPU: a bf16 screen, then the exact fp32 logits of a few candidates.

A greedy step needs only the argmax of the fp32 LM head, yet computing every logit of a 49k-token
vocabulary is a fifth of a 135M model's decode-step matmuls (28 ms of 140 at batch 40 on the
2-core machine). With native bf16 dot products the same product in bf16 takes a third of that, and
a bound on its error tells which columns can still be the argmax:

  1. ``Lb = bf16(h) @ bf16(E)^T``: fp32 accumulation, output rounded to bf16.
  2. The bound: for every column j, ``|S_j - L_j| <= A`` where S_j is the screen before its output
     is rounded to bf16 and L_j the fp32 head's logit,
         A = c1 * ||h|| * max_j ||E_j|| + K * 2^-125,
     c1 = 2u + u^2 + 2*gamma_K*(1+u)^2 (rounding h and E to bf16, u = 2^-8; the screen's and the
     fp32 head's accumulations, gamma_K = K*2^-24 / (1 - K*2^-24)); the last term covers flushed
     denormals.
  3. Candidates: every column with ``Lb_j >= thr``, where, with hi = max_j Lb_j and c2 = u/(1-u),
         thr = hi - c2*|hi| - 2A - u*((1+c2)*|hi| + 2A).
     The argmax j* of L is one: L_j* >= L_jmax >= S_jmax - A >= hi - c2*|hi| - A, so
     S_j* >= L_j* - A >= hi - c2*|hi| - 2A, and rounding to bf16 is monotone and within u, so
     Lb_j* >= thr. Every column tied with j* passes by the same steps. (A slack of 1% covers
     computing thr itself.) Measured on smollm2 (391 hidden states of greedy completions): the
     largest screen error is 3.5% of hi - thr; 55 candidates a row on average, 600-2,300 columns
     for 40 rows together, against 49,152.
  4. The candidates' fp32 logits, computed by the same GEMM kernel as the full head (see below),
     and their argmax in ascending column order: the full head's argmax, first index on a tie.

Same kernel, same bits: MKL's fp32 GEMM gives each output element the same bits whatever the
matrix's size once both the rows and the columns number at least 12 (measured on this machine;
below that it switches to small-matrix kernels that differ in the last bit, 7e-6 on smollm2's
logits). So the candidates' product is padded to at least ``PAD`` rows and columns, and
``GreedyHeadScreen`` first checks, on the model's own head, that sub-products equal the full
product bit for bit; where they do not (another BLAS, another CPU), the screen stays off. The
token picked is therefore the argmax of the fp32 head as a batch of 12 or more rows computes it;
below 12 rows the plain head's own kernels change, so there the screen is batch-size-invariant
where the plain head is not.

The head falls back to the full fp32 product for a step whose hidden state or screen is not
finite, or whose candidates exceed a quarter of the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

# Model classes whose forward is exactly ``logits = lm_head(last_hidden_state)``: no logit scaling
# or soft-capping after the head, so the argmax of the head is the argmax of the logits.
SCREENABLE_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
MIN_VOCAB = 4096  # below this the full head is cheap and the screen cannot pay for itself
MIN_STEPS = 8  # building the bf16 copy costs about two full-head products
PAD = 16  # rows and columns of the exact product, at least: MKL's size-invariant kernel
MAX_CANDIDATE_FRACTION = 0.25

_U = 2.0**-8  # bf16 unit roundoff
_EPS32 = 2.0**-24  # fp32 unit roundoff
_SLACK = 1.01  # covers the rounding of computing the threshold itself


@dataclass(frozen=True)
class ScreenBound:
    """The constants of the screen's error bound for hidden size K (see the module docstring)."""

    c1: float
    c2: float
    absolute: float

    @classmethod
    def for_hidden_size(cls, k: int) -> ScreenBound:
        gamma = k * _EPS32 / (1 - k * _EPS32)
        return cls(c1=2 * _U + _U * _U + 2 * gamma * (1 + _U) ** 2, c2=_U / (1 - _U), absolute=k * 2.0**-125)

    def threshold(self, hidden: torch.Tensor, high: torch.Tensor, max_row_norm: float) -> torch.Tensor:
        """(B,) the lowest screen value a row's argmax (or a column tied with it) can have."""
        a = self.c1 * torch.linalg.vector_norm(hidden, dim=-1) * max_row_norm + self.absolute
        slack = 2 * a * (1 + _U) + high.abs() * (self.c2 + _U * (1 + self.c2))
        bound: torch.Tensor = high - _SLACK * slack
        return bound


class ScreenedGreedyHead:
    """The argmax of ``hidden @ weight^T`` for one state of the weights (built per batch)."""

    def __init__(self, weight: torch.Tensor) -> None:
        weight = weight.detach()  # the same storage, without autograd
        self.weight = weight  # (V, K) fp32, the model's own tensor
        self.weight_bf16 = weight.to(torch.bfloat16)
        self.max_row_norm = float(torch.linalg.vector_norm(weight, dim=1).max())
        self.bound = ScreenBound.for_hidden_size(weight.shape[1])
        self.pad_columns = torch.arange(min(PAD, weight.shape[0]), device=weight.device)
        self.max_candidates = int(weight.shape[0] * MAX_CANDIDATE_FRACTION)
        self.steps = 0  # argmax calls
        self.fallbacks = 0  # of which ran the full fp32 head

    def argmax(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, K) fp32 final hidden states -> (B,) token ids, the full head's argmax."""
        self.steps += 1
        hidden = hidden.contiguous()  # a prefill's last column is a strided view; the exact product wants rows
        screen = F.linear(hidden.to(torch.bfloat16), self.weight_bf16)  # (B, V) bf16
        high = screen.amax(dim=-1).float()
        threshold = self.bound.threshold(hidden, high, self.max_row_norm)
        if not (torch.isfinite(threshold).all() and torch.isfinite(hidden).all()):
            return self._full(hidden)  # a NaN or inf: the plain head's argmax semantics
        keep = screen >= threshold[:, None]  # compared in fp32, exactly
        # Any row's candidate; a uint8 max down the rows is 30x faster than bool any(dim=0).
        candidates = keep.view(torch.uint8).amax(dim=0).nonzero().squeeze(1)  # ascending
        if candidates.numel() > self.max_candidates:
            return self._full(hidden)
        if candidates.numel() < PAD:
            candidates = torch.unique(torch.cat([candidates, self.pad_columns]))  # sorted; extra columns are harmless
        logits = F.linear(_pad_rows(hidden), self.weight.index_select(0, candidates))[: hidden.shape[0]]
        return candidates[logits.argmax(dim=-1)]

    def _full(self, hidden: torch.Tensor) -> torch.Tensor:
        self.fallbacks += 1
        return F.linear(_pad_rows(hidden), self.weight)[: hidden.shape[0]].argmax(dim=-1)


class GreedyHeadScreen:
    """Decides once per model whether greedy steps may use ``ScreenedGreedyHead``, and builds one."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.model = model
        self.device = device
        self._checked: dict[tuple[tuple[int, ...], int], bool] = {}  # (weight shape, torch threads) -> size-invariance held

    def head_for(self, steps: int) -> ScreenedGreedyHead | None:
        """A head for the weights as they are now, or None where the full head must run."""
        weight = _screenable_weight(self.model, self.device)  # looked up each time: never a stale tensor
        if weight is None or steps < MIN_STEPS:
            return None
        key = (tuple(weight.shape), torch.get_num_threads())
        if key not in self._checked:
            self._checked[key] = gemm_is_size_invariant(weight)
        return ScreenedGreedyHead(weight) if self._checked[key] else None


def gemm_is_size_invariant(weight: torch.Tensor) -> bool:
    """True when sub-products of ``x @ weight^T`` (>= PAD rows and columns) equal the full one bitwise."""
    with torch.inference_mode():
        generator = torch.Generator(device="cpu").manual_seed(0)
        probe = torch.randn(3 * PAD, weight.shape[1], generator=generator).to(weight.device)
        full = F.linear(probe, weight)
        for rows in (PAD, 23, 2 * PAD):
            if not torch.equal(F.linear(probe[:rows], weight), full[:rows]):
                return False
        vocab = weight.shape[0]
        for count in (PAD, 37, 1000):
            columns = torch.linspace(0, vocab - 1, steps=min(count, vocab), device=weight.device).long().unique()
            if not torch.equal(F.linear(probe[:PAD], weight.index_select(0, columns)), full[:PAD, columns]):
                return False
        return True


def _screenable_weight(model: torch.nn.Module, device: torch.device) -> torch.Tensor | None:
    # A transformers model, not a wrapper: the generator calls its get_decoder() and bypasses forward().
    if not isinstance(model, PreTrainedModel) or device.type != "cpu":
        return None
    if getattr(model.config, "model_type", None) not in SCREENABLE_MODEL_TYPES:
        return None
    head = model.get_output_embeddings()
    if not isinstance(head, torch.nn.Linear) or getattr(head, "bias", None) is not None:  # torch types bias as never None
        return None
    weight = head.weight
    if weight.dtype != torch.float32 or weight.shape[0] < MIN_VOCAB:
        return None
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return None
    return weight


def _pad_rows(hidden: torch.Tensor) -> torch.Tensor:
    rows = hidden.shape[0]
    if rows >= PAD:
        return hidden
    return torch.cat([hidden, hidden.new_zeros(PAD - rows, hidden.shape[1])])
