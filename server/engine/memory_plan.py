"""The memory plan: the bytes each device holds while the server sweeps, known before loading.

Per device (and the host, for what the plan puts there beside GPUs), for the configured limits:

  model        the weights placed there, in the model dtype;
  pristine     theta0 (``--pristine``; ``pristine.py``): the model's bytes again, or 0;
  directions   whole directions held: ``max_directions`` x 4 bytes per weight element placed
               there ("cache"; also "regenerate", where every kind but per-tensor random
               directions is held), in host memory ("host"), or 0 ("stream");
  scratch      what a switch or a build has alive: the largest tensor there in fp32 twice (the
               accumulator and one component), plus its theta0 when theta0 is not on the device;
  kv_cache     ``max_batch_size`` x (``max_prompt_tokens`` + ``max_new_tokens``) positions of
               every layer there (a sliding-window layer keeps at most its window);
  activations  the prefill's peak inside one layer for ``max_batch_size`` x ``max_prompt_tokens``
               tokens (the larger of attention and MLP, below), the 4D attention mask, and on the
               LM head's device the last position's logits in fp32;
  runtime      an allowance for the CUDA context and the libraries' workspaces: 1 GiB per GPU.

``total = model + pristine + directions + max(scratch, kv_cache + activations) + runtime``: a
switch or a build (scratch) and a generation (KV cache, activations) never overlap, because the
host's one worker thread runs them one after the other. Per prefill token, in the model dtype:
attention 2H + 2(n_heads + 2 n_kv_heads) d_head + n_heads d_head (residual and normed input;
q, k, v before and after rotary; attention output), MLP 2H + 3I (residual and normed input; the
activated gate, up and their product). Eager attention adds the fp32 scores (2 B n_heads P^2);
SDPA and flash kernels do not hold them.

``plan_memory`` resolves the "auto" settings: ``--direction-storage auto`` holds directions
whole ("cache") only while all of them at the cap take at most 5% of the devices' memory, else
"stream"; ``--pristine auto`` keeps theta0 on a GPU when the plan fits with it there, else in
pinned host memory, else re-read from the checkpoint, and on a CPU re-reads it from the
checkpoint when the model came from one (the page cache serves it: no second copy in RAM), else
holds it. The plan of a device map (``--device-map auto|balanced``) is accelerate's map for the
bytes of weights each GPU may take once the rest of the plan is set aside.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import InvalidArgument, ResourceExhausted
from ..models.placement import DeviceSpace, check_device_map, device_of, infer_device_map
from .directions import unique_parameters

__all__ = [
    "AUTO_CACHE_FRACTION", "DevicePlan", "Geometry", "MemoryPlan", "PlanSettings", "auto_storage", "geometry", "plan_memory",
    "refuse_unless_fits",
]

GiB = 2**30
RUNTIME_PER_GPU = 1 * GiB
AUTO_CACHE_FRACTION = 0.05
HOST = "host"
KINDS = ("model", "pristine", "directions", "scratch", "kv_cache", "activations", "runtime")


@dataclass(frozen=True)
class PlanSettings:
    """What the plan depends on besides the model: the limits, storage and pristine settings."""

    dtype: torch.dtype
    max_batch_size: int
    max_prompt_tokens: int
    max_new_tokens: int
    max_directions: int
    storage: str = "auto"  # auto | cache | regenerate | stream | host
    pristine: str = "auto"  # auto | device | host | checkpoint
    checkpoint: bool = False  # the model comes from a safetensors checkpoint (pristine may be re-read)


@dataclass(frozen=True)
class Geometry:
    """The model as the plan sees it: every unique tensor's size, its layers and attention shape."""

    tensors: tuple[tuple[str, int], ...]  # (name, elements) of the unique params, in model order
    layers: tuple[str, ...]  # the decoder layers' module names ("model.layers.0", ...)
    windows: tuple[int | None, ...]  # each layer's sliding window (None: full attention)
    head: str  # the LM head's module name
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    element_size: int
    eager: bool

    @property
    def numel(self) -> int:
        return sum(n for _, n in self.tensors)

    def kv_per_position(self) -> int:
        return 2 * self.kv_heads * self.head_dim * self.element_size


def geometry(model: torch.nn.Module, config: Any, dtype: torch.dtype) -> Geometry:
    """The plan's view of ``model`` (a meta or a loaded model) and its config."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    tensors = tuple((name, p.numel()) for name, p in unique_parameters(model))
    layer_count = int(getattr(text, "num_hidden_layers", 0))
    layers: tuple[str, ...] = ()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == layer_count:
            layers = tuple(f"{name}.{i}" for i in range(layer_count))
            break
    window = getattr(text, "sliding_window", None)
    types = list(getattr(text, "layer_types", None) or ["full_attention"] * layer_count)
    windows = tuple(window if t == "sliding_attention" and window else None for t in types)
    heads = int(text.num_attention_heads)
    hidden = int(text.hidden_size)
    output_embeddings = getattr(model, "get_output_embeddings", None)
    head_module = output_embeddings() if callable(output_embeddings) else None
    head = next((n for n, m in model.named_modules() if m is head_module), "lm_head")
    return Geometry(
        tensors=tensors, layers=layers, windows=windows or (None,) * len(layers), head=head, hidden=hidden,
        intermediate=int(getattr(text, "intermediate_size", None) or 4 * hidden), heads=heads,
        kv_heads=int(getattr(text, "num_key_value_heads", None) or heads),
        head_dim=int(getattr(text, "head_dim", None) or hidden // heads), vocab=int(text.vocab_size),
        element_size=torch.empty((), dtype=dtype).element_size(),
        eager=getattr(config, "_attn_implementation", None) == "eager",
    )


@dataclass(frozen=True)
class DevicePlan:
    device: str
    capacity: int
    model: int = 0
    pristine: int = 0
    directions: int = 0
    scratch: int = 0
    kv_cache: int = 0
    activations: int = 0
    runtime: int = 0

    @property
    def total(self) -> int:
        return self.model + self.pristine + self.directions + max(self.scratch, self.kv_cache + self.activations) + self.runtime

    @property
    def fits(self) -> bool:
        return self.total <= self.capacity

    def figures(self) -> dict[str, int]:
        return {kind: int(getattr(self, kind)) for kind in KINDS} | {"total": self.total, "capacity": self.capacity}


@dataclass(frozen=True)
class MemoryPlan:
    devices: tuple[DevicePlan, ...]
    storage: str  # resolved
    pristine: str  # resolved
    settings: PlanSettings
    device_map: dict[str, str] = field(default_factory=dict)  # module -> device; {"": device} unsharded

    @property
    def fits(self) -> bool:
        return all(d.fits for d in self.devices)

    def refusal(self) -> str:
        """What does not fit, and the setting to change ("" when it fits)."""
        over = next((d for d in self.devices if not d.fits), None)
        if over is None:
            return ""
        s = self.settings
        parts = ", ".join(f"{k.replace('_', ' ')} {_gib(v)}" for k, v in over.figures().items() if k in KINDS and v)
        return (
            f"the memory plan does not fit {over.device}: it needs {_gib(over.total)} of {_gib(over.capacity)} "
            f"({parts}; KV cache and activations for --max-batch-size {s.max_batch_size} x (--max-prompt-tokens "
            f"{s.max_prompt_tokens} + --max-new-tokens {s.max_new_tokens})); {_advice(over, self)}. "
            "`visage-server --memory-plan` prints the plan"
        )

    def host_room(self) -> int:
        """Host memory the plan leaves free: the host row's capacity less its total beside GPUs,
        the CPU's on a CPU server (0 when neither is planned)."""
        row = next((d for d in self.devices if d.device in (HOST, "cpu")), None)
        return max(0, row.capacity - row.total) if row is not None else 0

    def table(self) -> str:
        s = self.settings
        head = ["device", *KINDS, "total", "capacity", "fits"]
        rows = [[d.device, *(_gib(v) for v in d.figures().values()), "yes" if d.fits else "NO"] for d in self.devices]
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
        lines = ["  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                 for r in [head, *rows]]
        lines.append(
            f"storage {self.storage}, pristine {self.pristine}, dtype {str(s.dtype).removeprefix('torch.')}, "
            f"batch {s.max_batch_size} x ({s.max_prompt_tokens} prompt + {s.max_new_tokens} new tokens), "
            f"max directions {s.max_directions}: {'fits' if self.fits else 'DOES NOT FIT'}"
        )
        return "\n".join(lines)


def _gib(n: int) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB else f"{n / 2**20:.1f} MiB"


def _advice(over: DevicePlan, plan: MemoryPlan) -> str:
    if over.model + over.runtime > over.capacity:
        largest = "model"
    else:
        largest = max(("kv_cache", "activations", "directions", "pristine"), key=lambda k: getattr(over, k))
    return {
        "kv_cache": "lower --max-batch-size, --max-prompt-tokens or --max-new-tokens",
        "activations": "lower --max-batch-size or --max-prompt-tokens",
        "directions": "use --direction-storage stream (or host), or lower --max-directions",
        "pristine": "keep theta0 off the device: --pristine host (or checkpoint)",
        "model": "shard the model over more GPUs with --device-map auto, or use a smaller --dtype",
    }[largest] + ("; or --pristine host" if plan.pristine == "device" and over.device.startswith("cuda")
                  and largest != "pristine" else "")


# -- the rows ----------------------------------------------------------------------------------


def _direction_ratio(storage: str, settings: PlanSettings, g: Geometry) -> float:
    """Bytes of directions held per byte of weights, on the device and on the host."""
    whole = settings.max_directions * 4 / g.element_size
    return whole if storage in ("cache", "regenerate") else 0.0


def _rows(g: Geometry, device_map: Mapping[str, str], spaces: Sequence[DeviceSpace], host: DeviceSpace,
          storage: str, pristine: str, s: PlanSettings) -> tuple[DevicePlan, ...]:
    b = g.element_size
    placement = {name: device_of(name, device_map) for name, _ in g.tensors}
    rows: dict[str, dict[str, int]] = {d.name: dict.fromkeys(KINDS, 0) for d in spaces}
    largest: dict[str, int] = {}
    for name, numel in g.tensors:
        dev = placement[name]
        rows[dev]["model"] += numel * b
        largest[dev] = max(largest.get(dev, 0), numel)
    ratio = _direction_ratio(storage, s, g)
    positions = s.max_prompt_tokens + s.max_new_tokens
    layer_devices = [device_of(layer, device_map) for layer in g.layers]
    for dev, window in zip(layer_devices, g.windows, strict=True):
        rows[dev]["kv_cache"] += s.max_batch_size * min(positions, window or positions) * g.kv_per_position()
    tokens = s.max_batch_size * s.max_prompt_tokens
    attention = 2 * g.hidden + 2 * (g.heads + 2 * g.kv_heads) * g.head_dim + g.heads * g.head_dim
    layer_peak = tokens * b * max(attention, 2 * g.hidden + 3 * g.intermediate)
    mask = s.max_batch_size * s.max_prompt_tokens * s.max_prompt_tokens
    scores = 2 * s.max_batch_size * g.heads * s.max_prompt_tokens**2 * 4 if g.eager else 0
    for dev in set(layer_devices):
        rows[dev]["activations"] += layer_peak + mask + scores
    rows[device_of(g.head, device_map)]["activations"] += 2 * s.max_batch_size * g.vocab * 4
    host_row = dict.fromkeys(KINDS, 0)
    for dev, row in rows.items():
        row["pristine"] = row["model"] if pristine == "device" or (pristine == "host" and dev == "cpu") else 0
        row["directions"] = int(row["model"] * ratio)
        row["scratch"] = largest.get(dev, 0) * (8 + (0 if pristine == "device" else b))
        row["runtime"] = RUNTIME_PER_GPU if dev.startswith("cuda") else 0
        if dev.startswith("cuda"):
            host_row["pristine"] += row["model"] if pristine == "host" else 0
            host_row["directions"] += int(row["model"] * s.max_directions * 4 / b) if storage == "host" else 0
    if storage == "host" and "cpu" in rows:
        rows["cpu"]["directions"] = int(rows["cpu"]["model"] * s.max_directions * 4 / b)
    plans = [DevicePlan(d.name, d.capacity, **rows[d.name]) for d in spaces]
    if any(d.name.startswith("cuda") for d in spaces):
        host_row["scratch"] = max(largest.values()) * (4 + 4 + b)  # a read buffer, a CPU draw, a hash copy
        plans.append(DevicePlan(HOST, host.capacity, **host_row))
    return tuple(plans)


# -- resolving the "auto" settings and the device map --------------------------------------------


def auto_storage(storage: str, *, numel: int, max_directions: int, capacity: int) -> str:
    """``auto``: "cache" while max_directions whole fp32 directions take at most 5% of ``capacity``."""
    if storage != "auto":
        return storage
    return "cache" if max_directions * numel * 4 <= AUTO_CACHE_FRACTION * capacity else "stream"


def _weight_budgets(g: Geometry, spaces: Sequence[DeviceSpace], storage: str, pristine: str,
                    s: PlanSettings) -> dict[str, int]:
    """Bytes of weights each GPU may take: its memory less the per-device allowances, divided by
    what each byte of weights brings along (pristine, directions, its layers' KV cache)."""
    one = {"": spaces[0].name}
    probe = _rows(g, one, spaces[:1], spaces[0], storage, pristine, s)[0]
    per_weight = (probe.model + probe.pristine + probe.directions + probe.kv_cache) / max(probe.model, 1)
    fixed = probe.runtime + probe.activations + probe.scratch
    return {d.name: int((d.capacity - fixed) / per_weight) for d in spaces}


def _plan_at(g: Geometry, spaces: Sequence[DeviceSpace], host: DeviceSpace, storage: str, pristine: str,
             s: PlanSettings, strategy: str, given_map: Mapping[str, str] | None, model: torch.nn.Module | None
             ) -> MemoryPlan:
    if given_map:
        device_map = dict(given_map)
    elif strategy and model is not None and len(spaces) > 1:
        budgets = _weight_budgets(g, spaces, storage, pristine, s)
        try:
            device_map = infer_device_map(model, spaces, budgets, strategy, s.dtype)
        except ResourceExhausted:  # it does not fit: plan the layers spread evenly, to show by how much
            device_map = infer_device_map(model, spaces, dict.fromkeys(budgets, 2**60), "balanced", s.dtype)
    else:
        device_map = {"": spaces[0].name}
    check_device_map(device_map)
    unknown = sorted(set(device_map.values()) - {d.name for d in spaces})
    if unknown:
        raise InvalidArgument(
            f"the device map names {', '.join(unknown)}, which this machine does not have "
            f"(visible: {', '.join(d.name for d in spaces)})"
        )
    used = [d for d in spaces if d.name in set(device_map.values())] or list(spaces[:1])
    rows = _rows(g, device_map, used, host, storage, pristine, s)
    return MemoryPlan(rows, storage, pristine, s, device_map)


def plan_memory(g: Geometry, s: PlanSettings, spaces: Sequence[DeviceSpace], host: DeviceSpace, *,
                strategy: str = "", device_map: Mapping[str, str] | None = None,
                model: torch.nn.Module | None = None) -> MemoryPlan:
    """The plan for ``g`` on ``spaces`` (GPUs, or the CPU) with ``s``; ``strategy`` ("auto",
    "balanced") shards ``model`` (meta) with accelerate, ``device_map`` is a given map."""
    on_gpu = spaces[0].kind == "cuda"
    storage = auto_storage(s.storage, numel=g.numel, max_directions=s.max_directions,
                           capacity=sum(d.capacity for d in spaces))
    if s.pristine != "auto":
        places = [s.pristine]
    elif on_gpu:
        places = ["device", "host", *(["checkpoint"] if s.checkpoint else [])]
    else:
        places = ["checkpoint" if s.checkpoint else "device"]
    plans = []
    for place in places:
        plans.append(_plan_at(g, spaces, host, storage, place, s, strategy, device_map, model))
        if plans[-1].fits:
            return plans[-1]
    return plans[-1]  # none fits: the most frugal place of theta0, whose refusal names what else to change


def refuse_unless_fits(plan: MemoryPlan) -> None:
    """ResourceExhausted naming the setting to change, unless every device fits."""
    if not plan.fits:
        raise ResourceExhausted(plan.refusal(), limit="memory_plan")

