"""The engine contract: everything the server does with its model, as plain method calls.

One ``Engine`` wraps one loaded model. It is not thread-safe: the ``ModelHost`` worker thread is
its only caller. Each method takes domain values (no protobuf) and returns domain values.
"""

from __future__ import annotations

import copy
import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..config import Limits
from ..errors import FailedPrecondition, InvalidArgument
from ..models.loading import LoadedModel
from ..registry import ModelRegistry
from .chat import ChatFormat
from .directions import DirectionSpec, direction_id
from .evaluation import ClassifierJudge, EvalOutcome, EvalSettings, PromptEncoder, SafetyEvaluator
from .generation import BatchGenerator, GenerationParams, GenerationStats, SequenceResult
from .prompts import PromptSetRegistry
from .weights import AppliedState, HeldDirection, Terms, WeightManager, model_fingerprint

Cancel = Callable[[], bool]


@dataclass(frozen=True)
class TermRequest:
    """One term of a requested perturbation: a held direction's id, or its spec."""

    coefficient: float
    direction_id: str = ""
    spec: DirectionSpec | None = None

    @property
    def key(self) -> str:
        return direction_id(self.spec) if self.spec is not None else self.direction_id


def weights_key(terms: Sequence[TermRequest]) -> tuple[tuple[str, float], ...]:
    """A cheap, GPU-free name of the weights a request needs (for grouping jobs)."""
    merged: dict[str, float] = {}
    for t in terms:
        merged[t.key] = merged.get(t.key, 0.0) + t.coefficient
    return tuple(sorted((k, c) for k, c in merged.items() if c != 0.0))


@dataclass(frozen=True)
class TokenizerFacts:
    tokenizer_class: str
    vocab_size: int
    has_chat_template: bool
    chat_template_sha256: str
    default_system_prompt: str
    eos_token: str
    pad_token: str
    fingerprint: str


class Engine:
    def __init__(
        self,
        loaded: LoadedModel,
        *,
        limits: Limits,
        direction_storage: str = "cache",
        registry: ModelRegistry | None = None,
        prompt_sets: PromptSetRegistry | None = None,
        classifier: LoadedModel | None = None,
    ) -> None:
        self.loaded = loaded
        self.limits = limits
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.fingerprint = model_fingerprint(self.model)
        self.registry = registry or ModelRegistry()
        self.prompt_sets = prompt_sets or PromptSetRegistry()
        self.weights = WeightManager(
            self.model,
            model_fingerprint=self.fingerprint,
            storage=direction_storage,
            max_directions=limits.max_directions,
            max_directions_per_tenant=limits.max_directions_per_tenant,
            max_abs_coefficient=limits.max_abs_coefficient,
            registry=self.registry,
        )
        self.generator = BatchGenerator(self.model, self.tokenizer, max_batch_size=limits.max_batch_size)
        judge = None
        if classifier is not None:
            judge = ClassifierJudge(
                BatchGenerator(classifier.model, classifier.tokenizer, max_batch_size=limits.max_batch_size),
                classifier.source.name,
            )
        self.evaluator = SafetyEvaluator(self.generator, limits.max_prompt_tokens, judge)
        # Request threads encode prompts when a request is admitted (``admit``), with their own
        # copy of the tokenizer: an HF fast tokenizer must not be used by two threads at once, and
        # the worker's copy is busy generating.
        self._admission = PromptEncoder(copy.deepcopy(self.tokenizer), limits.max_prompt_tokens)
        self._admission_lock = threading.Lock()
        self.tokenizer_facts = _tokenizer_facts(self.tokenizer)

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for _, p in self.weights.params)

    # -- weight states ------------------------------------------------------------------------

    def resolve(self, terms: Sequence[TermRequest], *, tenant: str = "anonymous") -> Terms:
        """Canonical terms for a request; directions sent as specs are created on demand.

        Cheap checks first (coefficients, then ids), so a bad request costs no direction build;
        a direction created for one term never evicts another term's direction (``protect``).
        """
        for t in terms:
            if t.spec is None and not t.direction_id:
                raise InvalidArgument("a perturbation term names neither a direction id nor a spec")
        self.weights.canonical_terms([(t.key, t.coefficient) for t in terms])  # validates coefficients
        for t in terms:
            if t.spec is None and t.coefficient != 0.0:
                self.weights.get(t.direction_id)  # NotFound before any work
        protect = frozenset(t.key for t in terms)
        pairs = []
        for t in terms:
            if t.spec is not None:
                held, _ = self.weights.create(t.spec, tenant=tenant, protect=protect)
                pairs.append((held.id, t.coefficient))
            else:
                pairs.append((t.direction_id, t.coefficient))
        return self.weights.canonical_terms(pairs)

    def at(self, terms: Sequence[TermRequest], *, tenant: str = "anonymous") -> AppliedState:
        return self.weights.apply(self.resolve(terms, tenant=tenant))

    def create_direction(self, spec: DirectionSpec, *, tenant: str = "anonymous") -> tuple[HeldDirection, bool]:
        return self.weights.create(spec, tenant=tenant)

    # -- work at the applied state ------------------------------------------------------------

    def check_generation(self, params: GenerationParams) -> None:
        if not 1 <= params.max_new_tokens <= self.limits.max_new_tokens:
            raise InvalidArgument(
                f"max_new_tokens is {params.max_new_tokens}; it must be between 1 and "
                f"{self.limits.max_new_tokens} (max_new_tokens limit)"
            )
        if params.do_sample and not (params.temperature > 0 and 0 < params.top_p <= 1):
            raise InvalidArgument("sampling needs temperature > 0 and 0 < top_p <= 1")

    def admit(self, prompts: Sequence[str], system_prompt: str | None, chat_format: ChatFormat) -> list[list[int]]:
        """Encode prompts on a request thread (any thread): InvalidArgument for one over
        ``max_prompt_tokens`` or empty, before the request waits in the queue."""
        with self._admission_lock:
            return self._admission.encode(prompts, system_prompt, chat_format)

    def generate(
        self,
        prompts: Sequence[str],
        *,
        system_prompt: str | None,
        chat_format: ChatFormat,
        params: GenerationParams,
        should_cancel: Cancel = lambda: False,
        encoded: Sequence[Sequence[int]] | None = None,
    ) -> tuple[list[SequenceResult], GenerationStats]:
        """``encoded``: the prompts as ``admit`` returned them (else they are encoded here)."""
        self.check_generation(params)
        if encoded is None:
            encoded = self.evaluator.encode(prompts, system_prompt, chat_format)
        return self.generator.generate([list(ids) for ids in encoded], params, should_cancel=should_cancel)

    def evaluate(self, settings: EvalSettings, *, should_cancel: Cancel = lambda: False) -> EvalOutcome:
        self.check_generation(settings.params)
        return self.evaluator.evaluate(settings, should_cancel=should_cancel)

    def score(self, items, *, candidates: Sequence[str] = (), should_cancel: Cancel = lambda: False):
        from .scoring import score

        return score(
            self.model,
            self.tokenizer,
            items,
            max_batch_size=self.limits.max_batch_size,
            candidates=candidates,
            should_cancel=should_cancel,
        )

    def warm_up(self) -> None:
        """One short generation so the first real request does not pay for lazy initialisation."""
        fmt = ChatFormat.TOKENIZER if self.tokenizer_facts.has_chat_template else ChatFormat.NONE
        self.generate(["Hello"], system_prompt=None, chat_format=fmt, params=GenerationParams(max_new_tokens=2))

    def memory(self) -> dict[str, int]:
        mem = self.weights.memory()
        device = self.loaded.device
        if device.type == "cuda":
            mem["device"] = int(torch.cuda.memory_allocated(device))
        else:
            mem["device"] = _rss_bytes()
        return mem


def _tokenizer_facts(tokenizer) -> TokenizerFacts:
    template = getattr(tokenizer, "chat_template", None) or ""
    if not isinstance(template, str):
        template = str(template)
    default_system = ""
    if template:
        try:
            with_default = tokenizer.apply_chat_template(
                [{"role": "user", "content": "\x00"}], tokenize=False, add_generation_prompt=False
            )
            default_system = with_default.split("\x00")[0]
        except Exception:  # a template that cannot render a lone user turn: report none
            default_system = ""
    vocab = tokenizer.get_vocab()
    h = hashlib.sha256()
    for token, index in sorted(vocab.items(), key=lambda kv: kv[1]):
        h.update(f"{index}\x00{token}\x01".encode("utf-8", "surrogatepass"))
    h.update(repr(sorted(tokenizer.all_special_tokens)).encode())
    return TokenizerFacts(
        tokenizer_class=type(tokenizer).__name__,
        vocab_size=len(vocab),
        has_chat_template=bool(template),
        chat_template_sha256=hashlib.sha256(template.encode()).hexdigest() if template else "",
        default_system_prompt=default_system,
        eos_token=tokenizer.eos_token or "",
        pad_token=tokenizer.pad_token or "",
        fingerprint=h.hexdigest(),
    )


def _rss_bytes() -> int:
    try:
        with open(f"/proc/{os.getpid()}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


__all__ = ["Engine", "TermRequest", "weights_key", "FailedPrecondition"]
