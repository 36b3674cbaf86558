"""A stored point as the exports and the DataFrame give it: the record, the model it was measured on,
and the command that measures it again.

:class:`PointRow` is one point of a store read for export (:mod:`.export`: CSV, JSON, JSONL) or
for a notebook (``ResultStore.to_pandas``). Every row names its model (:attr:`PointRow.model`:
display name and fingerprint; the record's own, else its sweep's for a point of the sweep's plan),
so the rows of two models can never be read as one landscape, and carries
:attr:`PointRow.reproduce`, the ``visage evaluate`` command that measures it again
(:mod:`.reproduce`), for a safety point of its sweep's plan (None otherwise: a capability point,
or a point an earlier spec of the same name measured, whose settings the metadata no longer
holds). A safety point's outcome counts and rates (``refused``, ``complied``, ``incoherent``,
``coherent_asr``, ``incoherent_rate``) are empty / null when the server's coherence referee did not
judge its answers. The column tuples of each format are here, each written once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .records import MeasuredModel, PointRecord
from .reproduce import reproduce_command
from .sweep_meta import SweepMeta

__all__ = ["CSV_COLUMNS", "PANDAS_COLUMNS", "PointRow", "point_rows"]

#: The points CSV's columns: which sweep and model, the point, and the command that measures it again.
CSV_COLUMNS = ("sweep", "model", "model_fingerprint", "series", "metric", "a", "b", "value", "total", "key",
               "created_at", "reproduce", "refused", "complied", "incoherent", "coherent_asr", "incoherent_rate")
#: The columns of ``ResultStore.to_pandas``.
PANDAS_COLUMNS = ("sweep", "model", "model_fingerprint", "series", "direction", "system_prompt", "metric", "a", "b",
                  "value", "total", "jailbroken", "generated_tokens", "tokens_saved", "prompt_set_name",
                  "prompt_set_size", "prompt_set_sha256", "judge", "seconds", "server", "weight_state", "key",
                  "created_at", "reproduce", "refused", "complied", "incoherent", "coherent_asr", "incoherent_rate")


@dataclass(frozen=True)
class PointRow:
    """One stored point for export: ``record``, the ``model`` it was measured on (None: neither the
    record nor its sweep names one) and ``reproduce``, the command that measures it again."""

    record: PointRecord
    model: MeasuredModel | None
    reproduce: str | None

    @property
    def model_name(self) -> str | None:
        return self.model.name if self.model is not None else None

    @property
    def model_fingerprint(self) -> str | None:
        return self.model.fingerprint if self.model is not None else None

    def outcomes(self) -> dict[str, Any]:
        """The point's answers by outcome and the rates (percent); each None when not judged."""
        o = self.record.outcomes
        if o is None:
            return dict.fromkeys(("refused", "complied", "incoherent", "coherent_asr", "incoherent_rate"))
        return {"refused": o.refused, "complied": o.complied, "incoherent": o.incoherent,
                "coherent_asr": o.coherent_asr, "incoherent_rate": o.incoherent_rate}

    def csv_cells(self) -> list[Any]:
        """The cells of :data:`CSV_COLUMNS` (floats written exactly, ``repr``; missing values empty)."""
        r = self.record
        judged = [("" if v is None else repr(v) if isinstance(v, float) else v) for v in self.outcomes().values()]
        return [r.sweep, self.model_name or "", self.model_fingerprint or "", r.series, r.metric, repr(r.a),
                "" if r.b is None else repr(r.b), repr(r.value), r.total, r.key, repr(r.created_at), self.reproduce or "",
                *judged]

    def to_dict(self) -> dict[str, Any]:
        """The JSON export's point: the record's dict, with its model, the command and the outcome rates."""
        rates = {k: v for k, v in self.outcomes().items() if k in ("coherent_asr", "incoherent_rate")}
        return {**self.record.to_dict(), "model": None if self.model is None else self.model.to_dict(),
                "reproduce": self.reproduce, **rates}

    def pandas_row(self) -> dict[str, Any]:
        """The DataFrame's row (:data:`PANDAS_COLUMNS`): the series split into direction and system
        prompt, the server's facts beside the value (None where they do not apply)."""
        r = self.record
        detail = r.detail.to_dict()
        row = {"sweep": r.sweep, "model": self.model_name, "model_fingerprint": self.model_fingerprint,
               "series": r.series, "direction": r.curve.direction, "system_prompt": r.curve.system or None,
               "metric": r.metric, "a": r.a, "b": math.nan if r.b is None else r.b, "value": r.value, "total": r.total,
               "key": r.key, "created_at": r.created_at, "reproduce": self.reproduce, **self.outcomes()}
        row.update({name: detail.get(name) for name in PANDAS_COLUMNS if name not in row})
        return row


def point_rows(records: Iterable[PointRecord], meta_of: Callable[[str], SweepMeta | None]) -> Iterator[PointRow]:
    """Each record as a :class:`PointRow`; ``meta_of(sweep)`` reads a sweep's metadata (once per
    sweep), for its spec (the command) and its model (for records that do not name theirs)."""
    metas: dict[str, tuple[SweepMeta | None, set[str]]] = {}
    for record in records:
        if record.sweep not in metas:
            meta = meta_of(record.sweep)
            planned = {p.key for p in (*meta.points, *(meta.refined_points or ()))} if meta is not None else set()
            metas[record.sweep] = meta, planned
        meta, planned = metas[record.sweep]
        # The sweep's model only for a point of its plan: a planned key holds the model's fingerprint,
        # so it cannot be another model's point left in the store under the sweep's name.
        in_plan = meta is not None and record.key in planned
        model = record.model or (meta.measured_model if meta is not None and in_plan else None)
        command = reproduce_command(record, meta.spec, model=model) if meta is not None and in_plan else None
        yield PointRow(record, model, command)
