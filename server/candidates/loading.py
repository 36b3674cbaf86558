"""A checked candidate loaded on the candidates' own thread (never the model's worker): LOADING
to READY.

What loading does, reading every byte once through descriptors checked to be the files located
(``inspection.py``), one chunk at a time (memory: one chunk), stopping between chunks when the
candidate is removed meanwhile:
  - the content fingerprint (``common/candidate_files.py``'s rule);
  - a checkpoint: the values of any tensor the model lacks compared with the parameter it must
    duplicate (a tied copy such as lm_head.weight), as ``directions/checkpoint.py`` checks a
    registry target;
  - an adapter: its LoRA factors read and kept in fp32 (``directions/adapter.py``), the memory a
    READY adapter holds. A checkpoint holds nothing once READY: as a direction it is read from
    its files when the direction is built or switched to.
No tensor is put on a device here: reading files is not device work.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import torch

from safety_landscape.common import candidate_files as cf

from ..engine.directions.adapter import AdapterModule, lora_config, modules_from_state
from ..engine.directions.checkpoint import check_interpolation_target
from ..errors import Cancelled
from .inspection import Checked, ServedModel

__all__ = ["Loaded", "load"]


@dataclass(frozen=True)
class Loaded:
    fingerprint: str
    modules: dict[str, AdapterModule] | None  # an adapter's factors; None for a checkpoint


def load(checked: Checked, served: ServedModel, should_cancel: Callable[[], bool]) -> Loaded:
    """Fingerprint and (adapter) factors of ``checked``; Cancelled once ``should_cancel`` says so,
    a LandscapeError saying what is wrong otherwise."""
    located = checked.located
    files = located.open_weights()
    try:
        digests = []
        weight_index = {f.name: i for i, f in enumerate(located.weights)}
        for f in located.files:
            if f.name in weight_index:
                digest = files.file_sha256(weight_index[f.name], should_cancel)
                if digest is None:
                    raise Cancelled("the candidate was removed while it loaded")
            else:
                digest = hashlib.sha256(located.config).hexdigest()
            digests.append((f.name, f.size, digest))
        modules = None
        if located.kind == cf.CHECKPOINT:
            params = [(name, torch.empty(shape, device="meta")) for name, shape in served.shapes.items()]
            check_interpolation_target(params, files)
        else:
            state = {name: files.read(name) for name in files}
            modules = modules_from_state(served.shapes, lora_config(json.loads(located.config)), state)
        files.check_unchanged()
        return Loaded(cf.combine(digests), modules)
    finally:
        files.close()
