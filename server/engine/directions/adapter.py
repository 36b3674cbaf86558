"""LoRA-adapter directions: the merged delta of a PEFT LoRA adapter, module by module.

delta_M = (B @ A) * lora_alpha / r (rslora: / sqrt(r)), transposed when fan_in_fan_out (and for
embeddings, as PEFT does), added to the param ``<M>.weight``. rank_pattern and alpha_pattern are
honoured. DoRA, modules_to_save and LoRA biases are refused, as are pickled adapter weights.
Whole (``adapter_direction``) or module by module (``adapter_modules``: the LoRA factors, small,
kept; each module's delta computed when it is needed, the same bits).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from safety_landscape.server.errors import FailedPrecondition, did_you_mean

__all__ = [
    "AdapterModule", "LoraConfig", "adapter_direction", "adapter_modules", "lora_config", "modules_from_state",
    "read_lora_config",
]

# PEFT keys: base_model.model.<module>.lora_A[.<adapter>].weight, ...lora_embedding_A[.<adapter>]
_LORA_KEY = re.compile(r"^(?P<module>.+)\.(?P<kind>lora_A|lora_B|lora_embedding_A|lora_embedding_B)(\.[^.]+)?(\.weight)?$")
_PEFT_PREFIX = "base_model.model."
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"


def _pattern_value(module: str, pattern: Mapping[str, Any], default: Any) -> Any:
    """PEFT's rank_pattern / alpha_pattern lookup: the first key that matches the module suffix."""
    for key, value in pattern.items():
        if re.match(rf"(.*\.)?{key}$", module):
            return value
    return default


@dataclass(frozen=True)
class LoraConfig:
    """What ``adapter_config.json`` says about how to merge the adapter."""

    r: int
    lora_alpha: float
    rank_pattern: Mapping[str, Any] = field(default_factory=dict)
    alpha_pattern: Mapping[str, Any] = field(default_factory=dict)
    rslora: bool = False
    fan_in_fan_out: bool = False

    def scale(self, module: str, rank: int) -> float:
        """alpha / r (rslora: alpha / sqrt(r)) for ``module``, whose lora_A has ``rank`` rows."""
        r = _pattern_value(module, self.rank_pattern, self.r)
        alpha = _pattern_value(module, self.alpha_pattern, self.lora_alpha)
        if r != rank:
            raise FailedPrecondition(f"adapter module {module!r}: config rank {r} but lora_A has rank {rank}")
        return float(alpha / math.sqrt(r) if self.rslora else alpha / r)


def _check_files(adapter_dir: Path) -> None:
    if not (adapter_dir / CONFIG_FILE).is_file():
        raise FailedPrecondition(f"adapter {str(adapter_dir)!r} has no {CONFIG_FILE} (a PEFT LoRA directory is expected)")
    if (adapter_dir / WEIGHTS_FILE).is_file():
        return
    if (adapter_dir / "adapter_model.bin").exists():
        raise FailedPrecondition(
            f"adapter {str(adapter_dir)!r} has only adapter_model.bin; only safetensors are loaded. Convert with "
            "`PeftModel.from_pretrained(base, dir).save_pretrained(dir, safe_serialization=True)`"
        )
    raise FailedPrecondition(f"adapter {str(adapter_dir)!r} has no {WEIGHTS_FILE}")


def read_lora_config(adapter_dir: Path) -> LoraConfig:
    """The adapter's merge settings; FailedPrecondition for a missing file or an unsupported adapter."""
    _check_files(adapter_dir)
    try:
        config = json.loads((adapter_dir / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise FailedPrecondition(f"{CONFIG_FILE} in {str(adapter_dir)!r} is unreadable: {e}") from None
    return lora_config(config)


def lora_config(config: Any) -> LoraConfig:
    """The merge settings of a parsed ``adapter_config.json``; FailedPrecondition for an
    unsupported adapter."""
    if not isinstance(config, dict):
        raise FailedPrecondition(f"{CONFIG_FILE} is not a JSON object")
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise FailedPrecondition(f"adapter peft_type {peft_type!r} is not supported; only LORA adapters are")
    if config.get("use_dora"):
        raise FailedPrecondition("adapter uses DoRA (use_dora=true); only plain LoRA deltas are supported")
    if "r" not in config or "lora_alpha" not in config:
        raise FailedPrecondition(f"{CONFIG_FILE} needs 'r' and 'lora_alpha'")
    if not _positive(config["r"]) or not _positive(config["lora_alpha"]):
        raise FailedPrecondition(f"{CONFIG_FILE}: 'r' and 'lora_alpha' must be positive numbers")
    return LoraConfig(
        r=config["r"],
        lora_alpha=config["lora_alpha"],
        rank_pattern=config.get("rank_pattern") or {},
        alpha_pattern=config.get("alpha_pattern") or {},
        rslora=bool(config.get("use_rslora", False)),
        fan_in_fan_out=bool(config.get("fan_in_fan_out", False)),
    )


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@dataclass
class _LoraPair:
    """One module's A [r, in] and B [out, r] (embedding: A [r, vocab], B [dim, r])."""

    a: torch.Tensor | None = None
    b: torch.Tensor | None = None
    embedding: bool = False


def _lora_pairs(state: Mapping[str, torch.Tensor]) -> dict[str, _LoraPair]:
    """The adapter's tensors grouped by module (PEFT prefix dropped), in file order."""
    pairs: dict[str, _LoraPair] = {}
    for key, tensor in state.items():
        m = _LORA_KEY.match(key)
        if m is None:
            raise FailedPrecondition(
                f"adapter key {key!r} is not a LoRA A/B matrix (modules_to_save, DoRA magnitudes and LoRA "
                "biases are not supported)"
            )
        module = m.group("module").removeprefix(_PEFT_PREFIX)
        kind = m.group("kind")
        pair = pairs.setdefault(module, _LoraPair())
        ab = kind[-1]
        if (pair.a if ab == "A" else pair.b) is not None:
            raise FailedPrecondition(
                f"adapter key {key!r}: a second lora_{ab} for module {module!r} (several adapters in one file?)"
            )
        if ab == "A":
            pair.a = tensor
        else:
            pair.b = tensor
        pair.embedding = pair.embedding or kind.startswith("lora_embedding")
    return pairs


@dataclass(frozen=True)
class AdapterModule:
    """One module's LoRA factors (fp32) and how they merge into its parameter ``<module>.weight``."""

    a: torch.Tensor  # [r, in] (embedding: [r, vocab])
    b: torch.Tensor  # [out, r] (embedding: [dim, r])
    scale: float
    transpose: bool

    def delta(self) -> torch.Tensor:
        """The fp32 delta, on the CPU: (B @ A) * scale, transposed where PEFT does."""
        delta = (self.b @ self.a) * self.scale  # [out, in]
        return (delta.T if self.transpose else delta).contiguous()

    @property
    def nbytes(self) -> int:
        return (self.a.numel() + self.b.numel()) * 4


def _module(module: str, pair: _LoraPair, config: LoraConfig, shapes: Mapping[str, tuple[int, ...]]) -> AdapterModule:
    """Check one module's pair against its parameter ``<module>.weight``."""
    pname = module + ".weight"
    if pair.a is None or pair.b is None:
        missing = "lora_A" if pair.a is None else "lora_B"
        raise FailedPrecondition(f"adapter module {module!r} has no {missing} tensor")
    if pname not in shapes:
        raise FailedPrecondition(
            f"adapter module {module!r} matches no parameter {pname!r} of the model (a tied lm_head is "
            f"held under its embedding's name).{did_you_mean(pname, shapes.keys())}"
        )
    a, b = pair.a.float(), pair.b.float()
    if a.dim() != 2 or b.dim() != 2 or b.shape[1] != a.shape[0]:
        raise FailedPrecondition(
            f"adapter module {module!r}: lora_B {tuple(b.shape)} @ lora_A {tuple(a.shape)} is not a valid product"
        )
    transpose = pair.embedding or config.fan_in_fan_out
    merged = (a.shape[1], b.shape[0]) if transpose else (b.shape[0], a.shape[1])
    if merged != shapes[pname]:
        raise FailedPrecondition(
            f"adapter module {module!r}: delta shape {merged} does not match parameter "
            f"{pname!r} of shape {shapes[pname]}"
        )
    return AdapterModule(a=a, b=b, scale=config.scale(module, a.shape[0]), transpose=transpose)


def adapter_modules(params: Sequence[tuple[str, torch.Tensor]], adapter_dir: Path) -> dict[str, AdapterModule]:
    """The adapter's modules, keyed by the parameter each one changes (checked, not yet merged)."""
    from safetensors.torch import load_file

    adapter_dir = Path(adapter_dir)
    config = read_lora_config(adapter_dir)
    shapes = {name: tuple(w.shape) for name, w in params}
    return modules_from_state(shapes, config, load_file(str(adapter_dir / WEIGHTS_FILE)))


def modules_from_state(
    shapes: Mapping[str, tuple[int, ...]], config: LoraConfig, state: Mapping[str, torch.Tensor]
) -> dict[str, AdapterModule]:
    """The modules of an adapter's tensors ``state`` for a model whose params have ``shapes``
    (checked; meta tensors check the names and shapes without any weights)."""
    pairs = _lora_pairs(state)
    if not pairs:
        raise FailedPrecondition("the adapter holds no LoRA tensors")
    return {module + ".weight": _module(module, pair, config, shapes) for module, pair in pairs.items()}


def adapter_direction(params: Sequence[tuple[str, torch.Tensor]], adapter_dir: Path) -> dict[str, torch.Tensor]:
    """The merged delta of a PEFT LoRA adapter as a direction (fp32; zero outside its modules)."""
    modules = adapter_modules(params, adapter_dir)
    out = {name: torch.zeros(w.shape, dtype=torch.float32, device=w.device) for name, w in params}
    devices = {name: w.device for name, w in params}
    for pname, module in modules.items():
        out[pname] = module.delta().to(devices[pname])
    return out
