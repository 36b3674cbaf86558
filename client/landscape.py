"""A landscape in one call, as a notebook wants it: :func:`sweep_landscape` runs a sweep into an
output folder exactly as ``visage sweep --out DIR`` does (results.sqlite, summary.json, plots/,
report.html; resumable: a second call reuses every stored point) and returns the folder read
back as a :class:`~.compare.Run` (``.frame()``: the points as a DataFrame, ``.visage``: VISAGE).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from .client import Client, server_from_environment
from .compare import Run, load_run
from .errors import ValidationError
from .store import STORE_NAME, ResultStore
from .sweep.fleet import Fleet
from .sweep.output_folder import write_outputs
from .sweep.runner import run_sweep
from .sweep.spec import SweepSpec, load_spec
from .sweep.spec import preset as preset_spec

__all__ = ["sweep_landscape"]


def _spec(spec: SweepSpec | str | Path | None, preset: str | None) -> SweepSpec:
    if spec is not None and preset is not None:
        raise ValidationError("give a spec or a preset, not both")
    if preset is not None:
        return preset_spec(preset)
    if spec is None:
        raise ValidationError('give a spec (a SweepSpec or a TOML file) or a preset, e.g. preset="quick"')
    return spec if isinstance(spec, SweepSpec) else load_spec(spec)


def sweep_landscape(
    spec: SweepSpec | str | Path | None = None,
    *,
    preset: str | None = None,
    out: str | Path,
    server: str | Sequence[str] | None = None,
    token: str | None = None,
    token_file: str | None = None,
    connect: Callable[[str], Client] | None = None,
    progress: bool | None = None,
    timeout: float | None = None,
) -> Run:
    """Sweep ``spec`` (a :class:`SweepSpec` or a TOML file) or the preset ``preset`` on ``server``
    (one "HOST:PORT" or several; None: ``VISAGE_SERVER``) into the folder ``out``, write its
    summary, plots and report, and return the folder read back (``run.result`` says what this call
    measured and reused). ``token`` / ``token_file`` as :class:`Client` takes them (None: the
    environment's); ``connect`` makes each server's client instead (TLS, timeouts). ``progress``:
    None = a bar on a terminal, lines elsewhere (stderr); False = none.

    Example::

        from safety_landscape.client import sweep_landscape

        run = sweep_landscape(server="127.0.0.1:50051", preset="quick", out="runs/quick")
        print(run.visage.by_system_prompt["default"].reference)   # VISAGE: mean over directions
        points = run.frame()                                      # pandas DataFrame, a row per point
    """
    chosen = _spec(spec, preset)
    targets = [server] if isinstance(server, str) else list(server or []) or [server_from_environment()]
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ValidationError(f"out={str(out)!r} is a file: name a folder for the sweep's files")
    folder.mkdir(parents=True, exist_ok=True)

    def client_of(target: str) -> Client:
        return Client(target, token=token, token_file=token_file)

    with ResultStore(folder / STORE_NAME) as store:
        with Fleet.connect(targets, connect or client_of) as fleet:
            result = run_sweep(chosen, store, fleet=fleet, bar=progress, timeout=timeout)
        write_outputs(folder, store, chosen.name)
    return dataclasses.replace(load_run(folder, sweep=chosen.name), result=result)
