"""The release gate: evaluate a candidate against VISAGE / ASR / over-refusal / drop thresholds.

``run_gate(config_path, connect, out_dir=...)`` loads the TOML config (:mod:`.config`), measures on
the servers (:mod:`.measure`: a sweep spec run by the sweep runner, its store kept as
``out_dir/results.sqlite`` so a re-run resumes), compares with the baseline by paired tests
(:mod:`.compare`), judges each threshold on its value or its 95 % interval (:mod:`.checks`), writes
gate.json, junit.xml and summary.md (:mod:`.verdict`, :mod:`.files`), and returns
``(exit_code, document)``: 0 pass, 1 fail, 2 could not evaluate, 3 inconclusive (interval mode).
Every exception becomes exit 2 with an error report: the gate never passes by accident.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..store import STORE_NAME
from .baseline import FORMAT, Baseline, BaselineError, load_baseline
from .checks import Check, evaluate_checks, intervals
from .compare import Comparison, compare
from .config import Decision, GateConfig, GateConfigError, Thresholds, config_from_dict, load_config, validate
from .files import write_outputs
from .measure import Measurements, gate_spec, measure, sha256_json
from .verdict import EXIT_ERROR, EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_PASS, error_document, gate_document

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAIL",
    "EXIT_INCONCLUSIVE",
    "EXIT_PASS",
    "FORMAT",
    "STORE_NAME",
    "Baseline",
    "BaselineError",
    "Check",
    "Comparison",
    "Decision",
    "GateConfig",
    "GateConfigError",
    "Measurements",
    "Thresholds",
    "compare",
    "config_from_dict",
    "gate_spec",
    "load_baseline",
    "load_config",
    "measure",
    "run_gate",
    "sha256_json",
    "validate",
    "write_outputs",
]


def run_gate(
    config_path: str | Path,
    connect: Callable[[str], Any],
    targets: Sequence[str],
    *,
    out_dir: str | Path | None = None,
    baseline: str | None = None,
    checkpoint: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Run the gate. ``connect(target)`` returns a :class:`~safety_landscape.client.client.Client`.

    ``baseline`` / ``checkpoint`` override the config's. Returns ``(exit_code, gate document)``;
    never raises for a failure to evaluate (that is exit 2, with ``document["error"]``).

    Example::

        code, doc = run_gate("gate.toml", Client, ["127.0.0.1:50051"], out_dir="visage-gate")
        print(doc["verdict"], [c["name"] for c in doc["checks"]])   # visage gate init writes gate.toml
    """
    config: GateConfig | None = None
    config_sha, started = "", time.time()
    clients: list[Any] = []
    try:
        try:
            config, raw = load_config(config_path, cross_check=False)
            config_sha = hashlib.sha256(raw).hexdigest()
            changes: dict[str, Any] = {}
            if baseline is not None:
                changes["baseline"] = baseline
            if checkpoint is not None:
                changes["checkpoint"] = checkpoint
            config = validate(dataclasses.replace(config, **changes), str(config_path))
            base = (load_baseline(config.baseline, rule=config.rule, system_prompt=config.system_prompt,
                                   metric=config.metric)
                    if config.baseline else None)
            if not targets:
                raise GateConfigError(["--server: give at least one server"])
            clients = [connect(t) for t in targets]
            store = Path(out_dir) / STORE_NAME if out_dir is not None else None  # a re-run resumes
            m = measure(config, clients, store_path=store)
            comparison = (compare(m, base, rule=config.rule, coefficients=config.coefficients,
                                  prompt_set_sha256=m.inputs["prompt_sets"]["harmful"]["sha256"],
                                  boot=config.decision.bootstrap) if base else None)
            cis = intervals(config, m, base, comparison)
            checks = evaluate_checks(config, m, base, comparison, cis=cis)
            doc = gate_document(config, m, checks, base, config_file=str(config_path), config_sha256=config_sha,
                                comparison=comparison, cis=cis, started=started)
        finally:
            for c in clients:
                with contextlib.suppress(Exception):  # closing must not turn a verdict into an error
                    c.close()
    except Exception as exc:  # anything that stops the evaluation is exit 2
        message = f"{type(exc).__name__}: {exc}"
        doc = error_document(message, config=config, config_file=str(config_path), config_sha256=config_sha,
                             started=started)
    if out_dir is not None:
        try:
            write_outputs(doc, out_dir)
        except Exception as exc:  # unwritable reports: the verdict cannot be published
            doc = error_document(f"cannot write the reports to {out_dir}: {exc}", config=config,
                                 config_file=str(config_path), config_sha256=config_sha, started=started)
    return int(doc["exit_code"]), doc
