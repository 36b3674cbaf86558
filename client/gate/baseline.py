"""The gate's baseline: the VISAGE to compare with and, when the file holds them, the per-prompt
verdicts that make the comparison a paired test on the same prompts.

:func:`load_baseline` reads

- a previous ``gate.json`` (``kind = "gate"``): its VISAGE and, from this version on, its
  ``verdicts`` block (per direction, one ``"0110..."`` string per coefficient: 1 = jailbroken);
- a sweep's ``summary.json`` (``"sweep-summary"``): VISAGE only;
- a ``results.sqlite`` store (``"store"``), a gate's or a 1D random sweep's: VISAGE and verdicts
  of the series with the gate's system prompt;
- a JSON number under ``visage`` (``"number"``).

Gating on the coherent ASR (``metric = "coherent_asr"``), the baseline must be on it too: a
gate.json that recorded that metric, a summary.json's ``outcomes.visage``, or a store whose points
have the referee's outcomes; anything else is a :class:`BaselineError` (compare like with like).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ValidationError, VisageError
from ..records import system_label
from ..visage import visage_expectation, visage_reference

__all__ = ["FORMAT", "Baseline", "BaselineError", "BaselineVerdicts", "load_baseline"]

FORMAT = "safety-landscape-gate/1"
_SQLITE_MAGIC = b"SQLite format 3\x00"


class BaselineError(ValidationError):
    pass


@dataclass(frozen=True)
class BaselineVerdicts:
    """Per-prompt ASR verdicts of a landscape: the prompt set they were judged on, the coefficients,
    and per direction one tuple of verdicts (True = jailbroken) per coefficient."""

    prompt_set_sha256: str
    coefficients: tuple[float, ...]
    by_direction: dict[str, list[tuple[bool, ...]]]

    def to_json(self) -> dict[str, Any]:
        """gate.json's ``verdicts`` block (verdicts as ``"0110..."`` strings)."""
        return {"prompt_set_sha256": self.prompt_set_sha256, "coefficients": list(self.coefficients),
                "by_direction": {d: ["".join("1" if x else "0" for x in row) for row in rows]
                                 for d, rows in self.by_direction.items()}}

    @classmethod
    def from_json(cls, data: Any) -> BaselineVerdicts | None:
        """The block back; None when it is absent or malformed (the baseline is then unpaired)."""
        try:
            by_direction = {str(d): [tuple(ch == "1" for ch in row) for row in rows]
                            for d, rows in data["by_direction"].items()}
            coefficients = tuple(float(c) for c in data["coefficients"])
            sha = str(data["prompt_set_sha256"])
        except (TypeError, KeyError, ValueError, AttributeError):
            return None
        if not by_direction or any(len(rows) != len(coefficients) for rows in by_direction.values()):
            return None
        return cls(sha, coefficients, by_direction)

    @property
    def origin(self) -> tuple[bool, ...] | None:
        """The verdicts at a = 0 (the same weights for every direction)."""
        if 0.0 not in self.coefficients:
            return None
        return next(iter(self.by_direction.values()))[self.coefficients.index(0.0)]


@dataclass(frozen=True)
class Baseline:
    file: str
    visage: float
    kind: str  # "gate" | "sweep-summary" | "store" | "number"
    sha256: str
    verdicts: BaselineVerdicts | None = None

    def to_dict(self) -> dict[str, Any]:
        """gate.json's ``baseline`` (the verdicts only as whether there are any)."""
        return {"file": self.file, "visage": self.visage, "kind": self.kind, "sha256": self.sha256,
                "paired": self.verdicts is not None}


def _number(x: Any) -> float | None:
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def _from_summary(path: Path, v: Mapping[str, Any], rule: str, system_prompt: str, sha: str) -> Baseline | None:
    by_sp = v.get("by_system_prompt")
    if isinstance(by_sp, dict) and by_sp:
        label = system_prompt if system_prompt in by_sp else (next(iter(by_sp)) if len(by_sp) == 1 else None)
        if label is None:
            raise BaselineError(f"baseline {path}: several system prompts ({', '.join(by_sp)}) and none is {system_prompt!r}")
        entry = by_sp[label].get(rule) if isinstance(by_sp[label], dict) else None
        mean = _number(entry.get("mean")) if isinstance(entry, dict) else _number(entry)
        if mean is None:
            raise BaselineError(f"baseline {path}: no {rule!r} VISAGE for system prompt {label!r}")
        return Baseline(str(path), mean, "sweep-summary", sha)
    series = v.get("series")
    if isinstance(series, dict) and series:
        vals = [_number(s.get(rule) if isinstance(s, dict) else s) for s in series.values()]
        numbers = [x for x in vals if x is not None]
        if len(numbers) == len(vals):
            return Baseline(str(path), sum(numbers) / len(numbers), "sweep-summary", sha)
    if _number(v.get("mean")) is not None:
        return Baseline(str(path), float(v["mean"]), "sweep-summary", sha)
    return None


def _from_json(path: Path, raw: bytes, *, rule: str, system_prompt: str, metric: str = "asr") -> Baseline:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"baseline {path}: not valid JSON ({exc})") from None
    sha = hashlib.sha256(raw).hexdigest()
    if not isinstance(doc, dict) or "visage" not in doc:
        raise BaselineError(f"baseline {path}: no 'visage' key; give a previous gate.json, a sweep summary.json "
                            "or a results.sqlite")
    v = doc["visage"]
    if metric == "coherent_asr" and doc.get("format") != FORMAT and _number(v) is None:
        outcomes = doc.get("outcomes")
        v = outcomes.get("visage") if isinstance(outcomes, dict) else None
        if not isinstance(v, dict):
            raise BaselineError(f"baseline {path}: coherent ASR: not measured in that sweep (no outcomes.visage); "
                                "this gate compares the coherent ASR")
    if doc.get("format") == FORMAT:
        if doc.get("verdict") == "error" or not isinstance(v, dict) or _number(v.get("mean")) is None:
            raise BaselineError(f"baseline {path}: that gate run measured no VISAGE (verdict {doc.get('verdict')!r})")
        if v.get("rule") != rule:
            raise BaselineError(f"baseline {path}: VISAGE rule {v.get('rule')!r}, this gate uses {rule!r}; "
                                "compare like with like")
        if v.get("metric", "asr") != metric:
            raise BaselineError(f"baseline {path}: VISAGE of {v.get('metric', 'asr')!r}, this gate uses {metric!r}; "
                                "compare like with like")
        return Baseline(str(path), float(v["mean"]), "gate", sha, BaselineVerdicts.from_json(doc.get("verdicts")))
    if _number(v) is not None:
        return Baseline(str(path), float(v), "number", sha)
    found = _from_summary(path, v, rule, system_prompt, sha) if isinstance(v, dict) else None
    if found is None:
        raise BaselineError(f"baseline {path}: cannot read a {rule!r} VISAGE from its 'visage' value")
    return found


def _from_store(path: Path, raw: bytes, *, rule: str, system_prompt: str, metric: str = "asr") -> Baseline:
    """VISAGE and verdicts of a store's 1D random ASR series with the gate's system prompt (of its
    coherent ASR with ``metric = "coherent_asr"``)."""
    from ..store import ResultStore
    from ..sweep.intervals import prompt_verdicts
    from ..sweep.outcomes import coherent_view
    from ..sweep.stored import load_sweep

    label = system_label(system_prompt)
    try:
        with ResultStore(path) as store:
            data = load_sweep(store)
    except VisageError as exc:
        raise BaselineError(f"baseline {path}: {exc}") from None
    if metric == "coherent_asr":
        view = coherent_view(data)
        if view.data is None or view.not_measured:
            raise BaselineError(f"baseline {path}: coherent ASR: not measured in sweep {data.name!r} ({view.reason})")
        data = view.data
    series = {s: pts for s, pts in data.records.get("asr", {}).items() if s.system == label and s.direction.startswith("d")}
    if data.two_d or not series or any(not data.complete("asr", s) for s in series):
        raise BaselineError(f"baseline {path}: sweep {data.name!r} has no complete 1D random ASR series with system "
                            f"prompt {label!r}")
    coefficients = tuple(c[0] for c in sorted(next(iter(series.values()))))
    score = visage_reference if rule == "reference" else visage_expectation
    scores = [score([pts[c].value for c in sorted(pts)]) for pts in series.values()]
    rows = {s.direction: [prompt_verdicts(pts[c]) for c in sorted(pts)] for s, pts in series.items()}
    sets = {r.detail.prompt_set_sha256 for pts in series.values() for r in pts.values()}
    verdicts = None
    if all(v is not None for rs in rows.values() for v in rs) and len(sets) == 1:
        by_direction = {d: [v for v in rs if v is not None] for d, rs in rows.items()}
        verdicts = BaselineVerdicts(str(sets.pop() or ""), coefficients, by_direction)
    return Baseline(str(path), math.fsum(scores) / len(scores), "store", hashlib.sha256(raw).hexdigest(), verdicts)


def load_baseline(path: str | Path, *, rule: str, system_prompt: str = "default", metric: str = "asr") -> Baseline:
    """The baseline VISAGE (and verdicts, when the file has them) of a gate.json, a summary.json or a
    results.sqlite; :class:`BaselineError` naming the file for anything else."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BaselineError(f"baseline {path}: cannot read it ({exc.strerror or exc})") from None
    if raw.startswith(_SQLITE_MAGIC):
        return _from_store(path, raw, rule=rule, system_prompt=system_prompt, metric=metric)
    return _from_json(path, raw, rule=rule, system_prompt=system_prompt, metric=metric)
