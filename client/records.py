"""Result records: one measured landscape point, as the client stores and exports it.

A :class:`PointRecord` is immutable and JSON-able (``to_dict`` / ``from_dict``); the result store
(:mod:`safety_landscape.client.store`) keys it by :attr:`PointRecord.key`, the content hash of
everything that determined the measurement (see ``store.point_key``). Its :class:`PointDetail`
holds the per-point facts the server reported, and its series label names a :class:`Series`
(direction and :func:`system_label`).
A :class:`Completion` is one prompt's answer at one point, with its verdict; the store keeps
them beside the record (compressed, each distinct text once). A record names the model it was
measured on (:class:`MeasuredModel`: display name and fingerprint), so no export row or
DataFrame row can be taken for another model's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from safety_landscape.common.names import SYSTEM_PROMPT_PRESETS

__all__ = ["CAPABILITY_METRICS", "FINISH_REASONS", "METRICS", "OUTCOMES", "Completion", "MeasuredModel", "Outcomes",
           "PointDetail", "PointRecord", "Series", "system_label"]

#: The metrics a point may carry. ``asr``: attack success rate on the harmful set (0..100);
#: ``refusal``: over-refusal on the benign set (0..100); ``accuracy``: capability (0..100);
#: ``perplexity``: fluency (>= 0, unbounded).
METRICS = ("asr", "refusal", "accuracy", "perplexity")
#: The capability metrics (scored, not judged; their series carry no system prompt).
CAPABILITY_METRICS = ("accuracy", "perplexity")
#: Why a completion stopped, as the server reports it (``""``: not reported, as in stores written
#: before completions were kept): end of sequence, max_new_tokens, a refusal keyword fixed the
#: verdict (early stop), the call was cancelled.
FINISH_REASONS = ("", "eos", "length", "keyword", "cancelled")
#: An answer's outcome (docs/method.md, "Outcomes and the coherence referee"): the judge's refusal,
#: no refusal and coherent, no refusal and not coherent; ``""``: the server's coherence referee did
#: not judge it (turned off, a server without one, a store written before it): never "complied".
OUTCOMES = ("", "refused", "complied", "incoherent")


@dataclass(frozen=True, order=True)
class Series:
    """One curve (or plane) of a sweep: the direction it runs along and, for the safety metrics,
    the system prompt's label.

    ``direction`` is ``d0``, ``d1``, ... (random), ``interp`` (toward a checkpoint) or ``plane``
    (a 2D grid); ``system`` is a preset name or ``custom-<sha8>``, and ``""`` for capability
    series, which do not depend on the system prompt. Stored as its :attr:`label`
    (``"d0|default"``, or ``"d0"`` for capability); :meth:`parse` reads a label back.

    Example::

        s = Series.parse("d0|default")
        print(s.direction, s.system, s.label)   # d0 default d0|default
    """

    direction: str
    system: str = ""

    @property
    def label(self) -> str:
        return f"{self.direction}|{self.system}" if self.system else self.direction

    @classmethod
    def parse(cls, label: str) -> Series:
        direction, _, system = label.partition("|")
        return cls(direction, system)

    def __str__(self) -> str:
        return self.label


def system_label(system: str) -> str:
    """A series' system-prompt label: a preset's name, or ``custom-<sha8>`` for a custom text
    (series names stay short)."""
    if system in SYSTEM_PROMPT_PRESETS:
        return system
    return "custom-" + hashlib.sha256(system.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class PointDetail:
    """What the server reported about one point, beside its value (``None``: not recorded).

    A safety point (``asr``, ``refusal``) records its evaluation: ``weight_state`` (the weights'
    fingerprint), ``jailbroken``, ``verdicts`` (``[index, jailbroken, matched_keyword]`` per
    prompt, then the outcome when the referee judged it), token counts, the prompt set's
    name/size/sha256, the system prompt's sha256, the judge, ``seconds`` and the ``system_prompt``
    as given; with the server's coherence referee, ``refused`` / ``complied`` / ``incoherent``
    (answers of each outcome; None: not judged) and ``referee`` (the id of the thresholds that
    decided). A capability point records ``inputs``
    (the content hashes it was scored on). Keys this client does not know are kept in ``extra``,
    so a record written by another version reads back unchanged.

    Example::

        for record in store.records("quick"):
            print(record.a, record.value, record.detail.jailbroken, record.detail.weight_state[:12])
    """

    server: str | None = None
    weight_state: str | None = None
    jailbroken: int | None = None
    verdicts: tuple[Any, ...] | None = None
    generated_tokens: int | None = None
    tokens_saved: int | None = None
    prompt_set_sha256: str | None = None
    prompt_set_name: str | None = None
    prompt_set_size: int | None = None
    system_prompt_sha256: str | None = None
    judge: str | None = None
    seconds: float | None = None
    system_prompt: str | None = None
    inputs: Mapping[str, Any] | None = None
    refused: int | None = None
    complied: int | None = None
    incoherent: int | None = None
    referee: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdicts is not None:
            object.__setattr__(self, "verdicts", tuple(self.verdicts))
        if self.inputs is not None:
            object.__setattr__(self, "inputs", dict(self.inputs))
        object.__setattr__(self, "extra", dict(self.extra))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PointDetail:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able dict the store writes: the recorded fields, then ``extra``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "extra" and value is not None:
                out[f.name] = list(value) if f.name == "verdicts" else (dict(value) if f.name == "inputs" else value)
        out.update(self.extra)
        return out

    def __getitem__(self, key: str) -> Any:
        """``detail["server"]``: key access, as when details were plain dicts; KeyError if not recorded."""
        value = self.to_dict().get(key)
        if value is None:
            raise KeyError(key)
        return value


@dataclass(frozen=True)
class Completion:
    """One prompt's answer at one point and the judge's verdict on it.

    ``index`` is the prompt's position in the prompt set; ``text`` the completion (decoded new
    tokens), ``None`` when it was not kept (points stored before completions were); ``prompt`` the
    prompt's text when the client sent it inline, ``None`` for a set the server holds (then
    ``index`` names it within the set whose sha256 the point's detail records). Token counts are
    ``None`` when not reported. ``outcome`` is one of :data:`OUTCOMES` (``""``: not judged by the
    coherence referee); then the referee's figures, None when not judged: ``coherent`` (its verdict,
    decided for a refusal too), ``nll`` (fluency: mean negative log-likelihood per answer token at
    theta0), ``repetition`` / ``token_repetition`` (fraction of repeated word / token n-grams) and
    ``word_run`` / ``token_run`` (the longest run of one word / token).

    Example::

        for record in store.records("quick"):
            for c in store.completions(record.key):
                print(record.a, c.index, c.jailbroken, (c.text or "")[:60])
    """

    index: int
    jailbroken: bool
    matched_keyword: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = ""
    text: str | None = None
    prompt: str | None = None
    classifier_output: str = ""
    outcome: str = ""
    coherent: bool | None = None
    nll: float | None = None
    repetition: float | None = None
    token_repetition: float | None = None
    word_run: int | None = None
    token_run: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "jailbroken", bool(self.jailbroken))
        if self.finish_reason not in FINISH_REASONS:
            raise ValueError(f"finish_reason {self.finish_reason!r} is not one of {', '.join(map(repr, FINISH_REASONS))}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r} is not one of {', '.join(map(repr, OUTCOMES))}")
        if self.outcome and self.outcome != ("incoherent" if self.jailbroken and not self.coherent else
                                             "complied" if self.jailbroken else "refused"):
            raise ValueError(f"outcome {self.outcome!r} contradicts jailbroken={self.jailbroken}, coherent={self.coherent}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Outcomes:
    """A safety point's answers by outcome (``total`` = refused + complied + incoherent) and the three
    rates in percent: ``coherent_asr`` (complied only) + ``incoherent_rate`` is the paper's ASR."""

    refused: int
    complied: int
    incoherent: int

    @property
    def total(self) -> int:
        return self.refused + self.complied + self.incoherent

    def rate(self, count: int) -> float:
        return 100.0 * count / self.total if self.total else 0.0

    @property
    def refusal_rate(self) -> float:
        return self.rate(self.refused)

    @property
    def coherent_asr(self) -> float:
        return self.rate(self.complied)

    @property
    def incoherent_rate(self) -> float:
        return self.rate(self.incoherent)


@dataclass(frozen=True)
class MeasuredModel:
    """The model a point was measured on: its display name (the server's ``--model-name``, else
    the model it loaded) and its fingerprint (the sha256 of its weights, part of the point's key)."""

    name: str
    fingerprint: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MeasuredModel:
        return cls(str(data.get("name") or ""), str(data.get("fingerprint") or ""))

    @classmethod
    def from_provenance(cls, provenance: Mapping[str, Any]) -> MeasuredModel | None:
        """The model a run's provenance names (``model_name``, ``model.model_fingerprint``: what
        every record of a sweep carried before records named their model), None if it names none."""
        model = provenance.get("model")
        fingerprint = model.get("model_fingerprint") if isinstance(model, Mapping) else None
        if not fingerprint:
            return None
        return cls(str(provenance.get("model_name") or ""), str(fingerprint))


@dataclass(frozen=True)
class PointRecord:
    """One measured point of a landscape sweep.

    ``series`` is the label of the :class:`Series` the point belongs to, e.g. ``"d0|default"``
    (direction | system-prompt label) for 1D sweeps or ``"plane|default"`` for 2D ones. ``coords``
    is ``(a,)`` for 1D and ``(a, b)`` for 2D. ``detail`` holds what the server reported (a
    :class:`PointDetail`; a dict is read into one); ``provenance`` the settings, seeds,
    fingerprints, package versions and git revision that produced it; ``model`` the model it was
    measured on (read from the provenance for records written before records named it; None for
    records that name none).

    Example::

        with ResultStore("runs/quick/results.sqlite") as store:
            asr = [(r.a, r.value) for r in store.records("quick") if r.metric == "asr"]
    """

    key: str
    sweep: str
    series: str
    coords: tuple[float, ...]
    metric: str
    value: float
    total: int
    detail: PointDetail = field(default_factory=PointDetail)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    model: MeasuredModel | None = None

    def __post_init__(self) -> None:
        # Normalise so records read back from JSON/SQLite compare equal to the ones written.
        object.__setattr__(self, "coords", tuple(float(c) for c in self.coords))
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "total", int(self.total))
        object.__setattr__(self, "created_at", float(self.created_at))
        detail: object = self.detail  # a dict, as records of earlier versions held, is read into a PointDetail
        if isinstance(detail, Mapping):
            object.__setattr__(self, "detail", PointDetail.from_dict(detail))
        object.__setattr__(self, "provenance", dict(self.provenance))
        if self.model is None:
            object.__setattr__(self, "model", MeasuredModel.from_provenance(self.provenance))
        problems = self._problems()
        if problems:
            raise ValueError("invalid PointRecord: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        problems = []
        if not self.key:
            problems.append("key must be a non-empty content hash")
        if not self.sweep:
            problems.append("sweep must be a non-empty name")
        if not self.series:
            problems.append("series must be a non-empty label")
        if len(self.coords) not in (1, 2):
            problems.append(f"coords must be (a,) or (a, b), got {len(self.coords)} values")
        if self.metric not in METRICS:
            problems.append(f"metric {self.metric!r} is not one of {', '.join(METRICS)}")
        if math.isnan(self.value):
            problems.append("value is NaN")
        if self.total < 0:
            problems.append(f"total must be >= 0, got {self.total}")
        return problems

    # Equality compares every field; hashing by the content key alone keeps records usable in
    # sets although detail/provenance hold dicts (equal records always share a key).
    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def a(self) -> float:
        return self.coords[0]

    @property
    def b(self) -> float | None:
        return self.coords[1] if len(self.coords) > 1 else None

    @property
    def curve(self) -> Series:
        """The series, structured."""
        return Series.parse(self.series)

    @property
    def outcomes(self) -> Outcomes | None:
        """The point's answers by outcome; None when the coherence referee did not judge them (or a
        capability point): the coherent ASR is then not measured, never 0 or the ASR."""
        d = self.detail
        if d.refused is None or d.complied is None or d.incoherent is None:
            return None
        return Outcomes(d.refused, d.complied, d.incoherent)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (coords as a list; ``model`` only when known); ``from_dict(to_dict(r)) == r``."""
        model = {"model": self.model.to_dict()} if self.model is not None else {}
        return {
            "key": self.key,
            "sweep": self.sweep,
            "series": self.series,
            "coords": list(self.coords),
            "metric": self.metric,
            "value": self.value,
            "total": self.total,
            "detail": self.detail.to_dict(),
            "provenance": dict(self.provenance),
            "created_at": self.created_at,
            **model,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PointRecord:
        """Inverse of :meth:`to_dict`; a missing required field raises ``ValueError`` naming it."""
        required = ("key", "sweep", "series", "coords", "metric", "value", "total")
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f"PointRecord dict lacks field(s): {', '.join(missing)}")
        return cls(
            key=data["key"],
            sweep=data["sweep"],
            series=data["series"],
            coords=tuple(data["coords"]),
            metric=data["metric"],
            value=data["value"],
            total=data["total"],
            detail=PointDetail.from_dict(data.get("detail") or {}),
            provenance=data.get("provenance") or {},
            created_at=data.get("created_at", 0.0),
            model=MeasuredModel.from_dict(data["model"]) if isinstance(data.get("model"), Mapping) else None,
        )
