"""The engine contract: everything the server does with its model, as plain method calls.

One ``Engine`` wraps one loaded model. It is not thread-safe: the ``ModelHost`` worker thread is
its only caller, except for what any thread may call: ``admission`` (a request's checks and
encoding before it queues), ``facts``, ``memory``, ``list_directions``, ``prompt_sets`` and
``registry``. Each method takes domain values (no protobuf) and returns domain values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..config import Limits
from ..errors import FailedPrecondition, InvalidArgument
from ..models.loading import LoadedModel
from ..registry import ModelRegistry
from .admission import Admission, AdmittedScore, TermRequest, system_prompt_sha256
from .chat import ChatFormat
from .direction_slots import Caller
from .directions import DirectionSpec
from .evaluation import EvalOutcome, EvalSettings, SafetyEvaluator
from .facts import MemoryFacts, ModelFacts, device_bytes_in_use, device_capacity, software_facts, tokenizer_facts
from .generation import BatchGenerator, GenerationParams, GenerationStats, SequenceResult
from .guards import AUTO, ClassifierJudge, resolve_format
from .job_memory import JobMemory, memory_budget, model_geometry
from .memory_plan import MemoryPlan, auto_storage
from .prompts import PromptSetRegistry
from .referee import RESIDENT, CoherenceReferee, RefereeItem, RefereeResult
from .referee_calibration import calibration_prompts
from .scoring import ScoreOutcome, score_prepared
from .weights import AppliedState, HeldDirection, Terms, WeightManager, model_fingerprint

Cancel = Callable[[], bool]


def _never() -> bool:
    return False


def weights_key(terms: Sequence[TermRequest]) -> tuple[tuple[str, float], ...]:
    """A cheap, GPU-free name of the weights a request needs (for grouping jobs)."""
    merged: dict[str, float] = {}
    for t in terms:
        merged[t.key] = merged.get(t.key, 0.0) + t.coefficient
    return tuple(sorted((k, c) for k, c in merged.items() if c != 0.0))


class Engine:
    def __init__(
        self,
        loaded: LoadedModel,
        *,
        limits: Limits,
        direction_storage: str = "cache",
        pristine: str = "device",
        registry: ModelRegistry | None = None,
        prompt_sets: PromptSetRegistry | None = None,
        classifier: LoadedModel | None = None,
        classifier_format: str = AUTO,
        judge_threshold: float = 0.5,
        model_name: str = "",
        memory_plan: MemoryPlan | None = None,
    ) -> None:
        """``direction_storage`` and ``pristine``: as resolved by the memory plan ("auto" storage is
        resolved here for the device); ``model_name``: the display name (default: the --model value);
        ``classifier``: the guard model of the classifier judge, in ``classifier_format`` (``auto``: told
        from its chat template, guards/formats.py)."""
        self.loaded = loaded
        self.limits = limits
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.model_name = model_name or loaded.source.name
        self.memory_plan = memory_plan
        self.fingerprint = model_fingerprint(self.model)
        self.registry = registry or ModelRegistry()
        self.prompt_sets = prompt_sets or PromptSetRegistry()
        numel = sum(p.numel() for p in self.model.parameters())
        self.weights = WeightManager(
            self.model,
            model_fingerprint=self.fingerprint,
            storage=auto_storage(direction_storage, numel=numel, max_directions=limits.max_directions,
                                 capacity=device_capacity(loaded.device)),
            pristine=pristine,
            checkpoint=loaded.checkpoint,
            max_directions=limits.max_directions,
            max_directions_per_tenant=limits.max_directions_per_tenant,
            tenant_direction_slots=limits.tenant_direction_slots,
            max_abs_coefficient=limits.max_abs_coefficient,
            registry=self.registry,
        )
        self.generator = BatchGenerator(self.model, self.tokenizer, max_batch_size=limits.max_batch_size)
        judge = None
        if classifier is not None:
            judge = ClassifierJudge(
                BatchGenerator(classifier.model, classifier.tokenizer, max_batch_size=limits.max_batch_size),
                resolve_format(classifier_format, classifier.tokenizer, classifier.source.name),
                checkpoint=classifier.source.name, fingerprint=model_fingerprint(classifier.model),
                threshold=judge_threshold,
            )
        self.evaluator = SafetyEvaluator(self.generator, limits.max_prompt_tokens, judge)
        self.job_memory = JobMemory(
            model_geometry(self.model), memory_budget(limits.max_job_memory_bytes, loaded.device),
            max_batch_size=limits.max_batch_size, max_batch_tokens=limits.max_batch_tokens,
        )
        self.admission = Admission(self.tokenizer, limits, self.prompt_sets, self.job_memory)  # request threads' checks
        self.tokenizer_facts = tokenizer_facts(self.tokenizer)
        self.referee = CoherenceReferee(
            self.generator, self.weights, self.job_memory, calibration_prompts(), max_prompt_tokens=limits.max_prompt_tokens,
            max_new_tokens=limits.max_new_tokens, has_chat_template=self.tokenizer_facts.has_chat_template,
        )

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for _, p in self.weights.params)

    # -- weight states ------------------------------------------------------------------------

    def resolve(
        self, terms: Sequence[TermRequest], *, tenant: str = "anonymous", admin: bool = True, should_cancel: Cancel = _never
    ) -> Terms:
        """Canonical terms for a request; directions sent as specs are created on demand.

        Cheap checks first (coefficients, ids, then room for every direction to create), so a bad
        request costs no direction build and evicts nothing; a direction created for one term never
        evicts another term's direction (``protect``).
        """
        for t in terms:
            if t.spec is None and not t.direction_id:
                raise InvalidArgument("a perturbation term names neither a direction id nor a spec")
        self.weights.canonical_terms([(t.key, t.coefficient) for t in terms])  # validates coefficients
        for t in terms:
            if t.spec is None and t.coefficient != 0.0:
                self.weights.get(t.direction_id)  # NotFound before any work
        protect = frozenset(t.key for t in terms)
        self.weights.check_room([t.key for t in terms if t.spec is not None], Caller(tenant, admin), protect=protect)
        pairs = []
        for t in terms:
            if t.spec is not None:
                held, _ = self.weights.create(t.spec, tenant=tenant, admin=admin, protect=protect, should_cancel=should_cancel)
                pairs.append((held.id, t.coefficient))
            else:
                pairs.append((t.direction_id, t.coefficient))
        return self.weights.canonical_terms(pairs)

    def at(
        self, terms: Sequence[TermRequest], *, tenant: str = "anonymous", admin: bool = True, should_cancel: Cancel = _never
    ) -> AppliedState:
        resolved = self.resolve(terms, tenant=tenant, admin=admin, should_cancel=should_cancel)
        return self.weights.apply(resolved, should_cancel=should_cancel)

    def create_direction(
        self, spec: DirectionSpec, *, tenant: str = "anonymous", admin: bool = True, should_cancel: Cancel = _never
    ) -> tuple[HeldDirection, bool]:
        return self.weights.create(spec, tenant=tenant, admin=admin, should_cancel=should_cancel)

    # -- work at the applied state ------------------------------------------------------------

    def check_generation(self, params: GenerationParams) -> None:
        self.admission.check_generation(params)

    def admit(self, prompts: Sequence[str], system_prompt: str | None, chat_format: ChatFormat) -> list[list[int]]:
        """Encode prompts on a request thread (any thread): InvalidArgument for one over
        ``max_prompt_tokens`` or empty, before the request waits in the queue."""
        return self.admission.encode(prompts, system_prompt, chat_format)

    def generate(
        self,
        prompts: Sequence[str],
        *,
        system_prompt: str | None,
        chat_format: ChatFormat,
        params: GenerationParams,
        should_cancel: Cancel = lambda: False,
        encoded: Sequence[Sequence[int]] | None = None,
        batch_rows: int | None = None,
    ) -> tuple[list[SequenceResult], GenerationStats]:
        """``encoded``: the prompts as ``admit`` returned them (else they are encoded here);
        ``batch_rows``: sequences per batch that fit the job's memory (admission's)."""
        self.check_generation(params)
        if encoded is None:
            encoded = self.evaluator.encode(prompts, system_prompt, chat_format)
        return self.generator.generate(
            [list(ids) for ids in encoded], params, should_cancel=should_cancel, batch_size=batch_rows
        )

    def evaluate(self, settings: EvalSettings, *, should_cancel: Cancel = lambda: False) -> EvalOutcome:
        self.check_generation(settings.params)
        return self.evaluator.evaluate(settings, should_cancel=should_cancel)

    def score(self, admitted: AdmittedScore, *, should_cancel: Cancel = lambda: False) -> list[ScoreOutcome]:
        """Score a request ``admission.score`` checked and encoded, in batches of its rows."""
        return score_prepared(self.model, self.tokenizer, admitted.prepared, rows=admitted.rows, should_cancel=should_cancel)

    # -- the coherence referee ----------------------------------------------------------------

    @property
    def referee_terms(self) -> list[TermRequest] | None:
        """The weights a referee pass needs applied: none in particular when theta0 is resident
        (it scores with theta0's tensors in place), else theta0 (an empty perturbation)."""
        return None if self.referee.mode == RESIDENT else []

    def calibrate_referee(self, max_new_tokens: int, *, should_cancel: Cancel = _never) -> None:
        """The referee's thresholds for ``max_new_tokens``, calibrated now if they are not yet (at theta0)."""
        self.referee.thresholds(max_new_tokens, should_cancel=should_cancel)

    def referee_answers(
        self, items: Sequence[RefereeItem], max_new_tokens: int, *, should_cancel: Cancel = _never
    ) -> RefereeResult:
        """The referee's figures and verdicts on ``items`` (at the weights ``referee_terms`` names)."""
        return self.referee.judge(items, max_new_tokens, should_cancel=should_cancel)

    def warm_up(self) -> None:
        """One short generation so the first real request does not pay for lazy initialisation."""
        fmt = ChatFormat.TOKENIZER if self.tokenizer_facts.has_chat_template else ChatFormat.NONE
        self.generate(["Hello"], system_prompt=None, chat_format=fmt, params=GenerationParams(max_new_tokens=2))

    # -- facts and held directions (any thread) ------------------------------------------------

    def memory(self) -> MemoryFacts:
        w = self.weights
        return MemoryFacts(
            model=w.model_bytes(), pristine=w.pristine_bytes(), directions=w.directions_bytes(),
            device=device_bytes_in_use(self.loaded.device),
        )

    def facts(self) -> ModelFacts:
        loaded = self.loaded
        return ModelFacts(
            model_name=self.model_name,
            architecture=type(loaded.model).__name__,
            parameter_count=self.parameter_count,
            dtype=str(loaded.dtype).removeprefix("torch."),
            device=",".join(loaded.devices),
            device_type=loaded.device.type,
            fingerprint=self.fingerprint,
            load_seconds=loaded.load_seconds,
            torch_version=torch.__version__,
            tokenizer=self.tokenizer_facts,
            memory=self.memory(),
            software=software_facts(loaded.device),
            memory_plan=self.memory_plan,
        )

    def system_prompt_sha256(self, system_prompt: str | None) -> str:
        return system_prompt_sha256(system_prompt, self.tokenizer_facts.chat_template_sha256)

    def list_directions(self, viewer: Caller | None = None) -> list[HeldDirection]:
        """Every held direction, or those ``viewer`` may see (its own and the admins')."""
        return self.weights.list(viewer)

    # -- held directions and the live weights (the worker thread) ------------------------------

    def delete_direction(self, did: str) -> None:
        """Forget a held direction (theta0 first if the applied state uses it); NotFound if not held."""
        self.weights.delete(did)

    def weights_sha256(self) -> str:
        """sha256 of the live weights (bit-exact; the model fingerprint at theta0)."""
        return self.weights.weights_sha256()


__all__ = ["Engine", "FailedPrecondition", "TermRequest", "weights_key"]
