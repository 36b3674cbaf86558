"""The pristine weights theta0, tensor by tensor, wherever they are kept.

Every weight state is recomputed from theta0 (docs/architecture.md, invariant 2), so theta0 must
be at hand for every tensor at every switch. Three places, chosen by the memory plan
(``memory_plan.py``; ``--pristine``):

- ``device``: a copy beside the live weights, on each tensor's device. The fastest switch (a
  device-memory read) at the price of one model's bytes on the device.
- ``host``: a copy in host memory, pinned when the model is on a GPU, so each tensor reaches
  the device by DMA during the switch (PCIe/NVLink-C2C bandwidth). No device memory.
- ``checkpoint``: nothing kept; each tensor is re-read from the safetensors checkpoint the model
  was loaded from (``CheckpointFiles``: page cache, else disk) and cast to the model dtype as the
  loader did. Checked against the live weights bit for bit when the model is loaded, and the
  files are checked unchanged (size, modification time) at every switch.

On a CPU the device IS host memory, so ``device`` and ``host`` are the same copy.
``PristineWeights[name]`` is theta0 of that param on its device, in the model dtype; a caller
must never write into it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ..errors import FailedPrecondition
from ..models.checkpoint_files import CheckpointFiles, checkpoint_files

__all__ = ["PRISTINE_PLACES", "PristineWeights", "checkpoint_keys", "pristine_weights"]

PRISTINE_PLACES = ("device", "host", "checkpoint")


class PristineWeights:
    """theta0 of every unique param; ``place`` says where it is kept."""

    def __init__(self, params: Sequence[tuple[str, torch.nn.Parameter]], place: str) -> None:
        self.place = place
        self.params = dict(params)
        self._held: dict[str, torch.Tensor] = {}

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._held[name]

    def begin_pass(self) -> None:
        """Called before each switch (a checkpoint checks its files are unchanged)."""

    @property
    def bytes_held(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._held.values())


class DevicePristine(PristineWeights):
    def __init__(self, params: Sequence[tuple[str, torch.nn.Parameter]]) -> None:
        super().__init__(params, "device")
        with torch.no_grad():
            self._held = {name: p.detach().clone() for name, p in params}


class HostPristine(PristineWeights):
    def __init__(self, params: Sequence[tuple[str, torch.nn.Parameter]]) -> None:
        super().__init__(params, "host")
        with torch.no_grad():
            for name, p in params:
                host = p.detach().to("cpu", copy=True)
                self._held[name] = host.pin_memory() if p.device.type == "cuda" else host

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._held[name].to(self.params[name].device, non_blocking=True)


class CheckpointPristine(PristineWeights):
    def __init__(self, params: Sequence[tuple[str, torch.nn.Parameter]], files: CheckpointFiles,
                 keys: dict[str, str]) -> None:
        super().__init__(params, "checkpoint")
        self.files = files
        self.keys = keys
        self._pin = any(p.device.type == "cuda" for _, p in params)

    def __getitem__(self, name: str) -> torch.Tensor:
        param = self.params[name]
        stored = self.files.read(self.keys[name], pin=self._pin)
        return stored.to(device=param.device, dtype=param.dtype, non_blocking=True)

    def begin_pass(self) -> None:
        self.files.check_unchanged()

    def verify(self) -> None:
        """FailedPrecondition unless every tensor read back equals the live weight bit for bit."""
        with torch.no_grad():
            for name, param in self.params.items():
                read = self[name]
                if read.shape != param.shape or not torch.equal(read.view(-1).view(torch.uint8),
                                                                 param.detach().reshape(-1).view(torch.uint8)):
                    raise FailedPrecondition(
                        f"tensor {name!r} read back from {self.files.paths[self.files.entries[self.keys[name]].file]} "
                        "differs from the loaded weight; keep the pristine weights in memory (--pristine device or host)"
                    )


def checkpoint_keys(names: Sequence[str], files: CheckpointFiles, prefix: str = "") -> dict[str, str] | str:
    """Each param's key in the checkpoint (its own name, or with the base model's prefix added or
    dropped); or, when one is missing, a sentence naming it."""
    keys: dict[str, str] = {}
    for name in names:
        candidates = [name]
        if prefix:
            candidates += [name.removeprefix(prefix + "."), f"{prefix}.{name}"]
        key = next((c for c in candidates if c in files), None)
        if key is None:
            return f"the checkpoint has no tensor for the model's {name!r}"
        keys[name] = key
    return keys


def pristine_weights(params: Sequence[tuple[str, torch.nn.Parameter]], place: str, *,
                     checkpoint: Path | None = None, prefix: str = "") -> PristineWeights:
    """theta0 kept at ``place`` (one of PRISTINE_PLACES); ``checkpoint`` is the safetensors
    checkpoint the model was loaded from (needed for "checkpoint")."""
    if place == "device":
        return DevicePristine(params)
    if place == "host":
        return HostPristine(params)
    if place != "checkpoint":
        raise ValueError(f"pristine place {place!r}: use one of {', '.join(PRISTINE_PLACES)}")
    if checkpoint is None:
        raise FailedPrecondition(
            "--pristine checkpoint needs a model loaded from a safetensors checkpoint (a Hugging Face "
            "directory); use --pristine device or host"
        )
    files = checkpoint_files(checkpoint)
    keys = checkpoint_keys([name for name, _ in params], files, prefix)
    if isinstance(keys, str):
        raise FailedPrecondition(f"--pristine checkpoint: {keys}; use --pristine device or host")
    pristine = CheckpointPristine(params, files, keys)
    pristine.verify()
    return pristine
