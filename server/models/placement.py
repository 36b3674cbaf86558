"""Where a model's tensors go: the devices visible and their free memory, and device maps.

``--device-map`` (with several GPUs; accelerate's device map, the engine transformers uses):
  - "" (default): the whole model on ``--device``;
  - ``auto``: fill the GPUs in order (accelerate's ``infer_auto_device_map``);
  - ``balanced``: spread the layers evenly (accelerate's ``get_balanced_memory`` first);
  - a JSON file ``{"module name": "cuda:N" | N | "cpu"}``, as ``from_pretrained`` takes it.
A map never sends tensors to "disk", and puts nothing on the CPU beside GPUs: offloaded weights
live outside the parameters (accelerate moves them in at each forward), where a perturbation
cannot be applied in place. The budgets ``infer_device_map`` gives accelerate are the bytes of
WEIGHTS each device may take, after the memory plan set aside what else the device holds.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import FailedPrecondition, InvalidArgument, ResourceExhausted

__all__ = [
    "DEVICE_MAP_STRATEGIES", "DeviceSpace", "check_device_map", "device_of", "host_space", "infer_device_map", "read_device_map",
    "visible_devices",
]

DEVICE_MAP_STRATEGIES = ("auto", "balanced")


@dataclass(frozen=True)
class DeviceSpace:
    """A device and the bytes it can still give (CUDA: free memory; CPU: MemAvailable)."""

    name: str  # "cpu", "cuda:0", ...
    capacity: int

    @property
    def kind(self) -> str:
        return self.name.split(":")[0]


def _mem_available() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def host_space() -> DeviceSpace:
    return DeviceSpace("cpu", _mem_available())


def visible_devices(device: str, *, several: bool = False) -> list[DeviceSpace]:
    """The devices a model may use: ``--device`` alone, or every GPU when ``several`` (a device
    map) and ``--device`` is auto or cuda."""
    if device == "cpu" or not torch.cuda.is_available():
        if device.startswith("cuda"):
            raise FailedPrecondition(f"--device {device}: no CUDA device is visible; use --device cpu")
        return [host_space()]
    if several and device in ("auto", "cuda"):
        indices = list(range(torch.cuda.device_count()))
    else:
        index = torch.device("cuda:0" if device in ("auto", "cuda") else device).index or 0
        if index >= torch.cuda.device_count():
            raise FailedPrecondition(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
        indices = [index]
    return [DeviceSpace(f"cuda:{i}", int(torch.cuda.mem_get_info(i)[0])) for i in indices]


def _device_name(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"cuda:{value}"
    if isinstance(value, str) and (value == "cpu" or value.startswith("cuda")):
        return "cuda:0" if value == "cuda" else value
    raise InvalidArgument(f"device {value!r} in a device map: use cuda:N, N or cpu (never disk)")


def read_device_map(path: Path) -> dict[str, str]:
    """A device map file: a JSON object of module names to devices."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"--device-map {path}: not a readable JSON file ({exc})") from None
    if not isinstance(raw, dict) or not raw:
        raise InvalidArgument(f"--device-map {path}: must be a JSON object of module names to devices")
    return {str(module): _device_name(device) for module, device in raw.items()}


def check_device_map(device_map: Mapping[str, str]) -> None:
    """Refuse maps that offload: CPU modules beside GPU ones (``read_device_map`` refuses disk)."""
    devices = set(device_map.values())
    if "cpu" in devices and len(devices) > 1:
        offloaded = sorted(m for m, d in device_map.items() if d == "cpu")[:3]
        raise FailedPrecondition(
            f"the device map puts {', '.join(offloaded)} on the CPU beside GPUs: offloaded weights cannot be "
            "perturbed in place; give the model more GPUs (or memory: lower --max-batch-size), or use --device cpu"
        )


def device_of(name: str, device_map: Mapping[str, str]) -> str:
    """The device of a tensor or module ``name`` under a map (the longest module prefix wins)."""
    probe = name
    while True:
        if probe in device_map:
            return device_map[probe]
        if not probe:
            raise FailedPrecondition(f"the device map places no module that holds {name!r}")
        probe = probe.rpartition(".")[0]


def infer_device_map(model: torch.nn.Module, devices: Sequence[DeviceSpace], weight_budgets: Mapping[str, int],
                     strategy: str, dtype: torch.dtype) -> dict[str, str]:
    """accelerate's map of a (meta) model over ``devices`` given each one's budget for weights."""
    if strategy not in DEVICE_MAP_STRATEGIES:
        raise InvalidArgument(f"device map strategy {strategy!r}: use auto, balanced or a JSON file")
    if len(devices) == 1:
        return {"": devices[0].name}
    from accelerate import infer_auto_device_map
    from accelerate.utils import get_balanced_memory

    max_memory: dict[int | str, int] = {int(d.name.split(":")[1]): max(0, weight_budgets[d.name]) for d in devices}
    no_split = list(getattr(model, "_no_split_modules", None) or [])
    quiet = logging.getLogger("accelerate.utils.modeling")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # a plan made for GPUs this machine lacks: accelerate warns per device
    try:
        if strategy == "balanced":
            max_memory = get_balanced_memory(model, max_memory=max_memory, no_split_module_classes=no_split, dtype=dtype)
        raw = infer_auto_device_map(model, max_memory=max_memory, no_split_module_classes=no_split, dtype=dtype)
    finally:
        quiet.setLevel(level)
    spilled = sorted(str(m) for m, d in raw.items() if d in ("cpu", "disk"))
    if spilled:
        raise ResourceExhausted(
            f"the model's weights do not fit on {len(devices)} GPU(s) beside the rest of the memory plan "
            f"({len(spilled)} modules left over, e.g. {spilled[0]}); add GPUs, or lower --max-batch-size / "
            "--max-prompt-tokens / --max-new-tokens, or keep the pristine weights off the GPUs (--pristine host)",
            limit="memory_plan",
        )
    return {str(m): _device_name(d) for m, d in raw.items()}
