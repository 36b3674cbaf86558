"""Direction maths: what a direction IS, tensor by tensor (METHOD.md section 1).

Owns the direction specs and their content ids, random layer/filter-normalised directions
(regenerable one tensor at a time from the spec alone), interpolation directions between two
checkpoints, LoRA-adapter directions, safetensors checkpoint loading and direction fingerprints.
It does not apply directions to a model (theta0 + sum c_i d_i lives with weight application).

Conventions:
- Every direction tensor is fp32, whatever the weight dtype (bf16 weights are read as fp32).
- Directions are keyed by the names of ``unique_parameters(model)``: a tied tensor (embedding ==
  lm_head) appears once, under its first name, and so is perturbed exactly once.
- All errors are ``safety_landscape.server.errors`` exceptions whose message names the tensor/key.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import torch

from safety_landscape.server.errors import FailedPrecondition, InvalidArgument, did_you_mean

__all__ = [
    "AdapterSpec",
    "DirectionSpec",
    "InterpolationSpec",
    "Normalization",
    "RandomSpec",
    "Selection",
    "Stream",
    "adapter_direction",
    "direction_fingerprint",
    "direction_id",
    "direction_norm",
    "interpolation_direction",
    "is_perturbed",
    "load_safetensors_checkpoint",
    "normalize",
    "random_direction",
    "random_tensor",
    "unique_parameters",
    "update_tensor_hash",
]

FILTER_EPS = 1e-10  # Li et al. 2018: d_i = g_i / (||g_i|| + 1e-10) * ||W_i||


class Normalization(str, Enum):
    LAYER = "layer"  # the paper's: per tensor
    FILTER = "filter"  # Li et al.: per row (slice along dim 0)
    NONE = "none"


class Selection(str, Enum):
    REFERENCE = "reference"  # the authors': zero every tensor whose name contains "norm"
    BIASBN = "biasbn"  # Li et al. ignore=biasbn: zero every tensor with dim <= 1
    ALL = "all"


class Stream(str, Enum):
    PER_TENSOR = "per_tensor"  # one generator per tensor, seeded from (seed, index, name)
    REFERENCE = "reference"  # the authors': one CPU stream over all params, draw `index`


@dataclass(frozen=True)
class RandomSpec:
    """A seeded random direction. Strings are accepted for the enums, lists for the patterns."""

    seed: int
    normalization: Normalization = Normalization.LAYER
    selection: Selection = Selection.REFERENCE
    include: tuple[str, ...] = ()  # fnmatch patterns; non-empty -> only matching names
    exclude: tuple[str, ...] = ()  # fnmatch patterns; exclude wins over include
    stream: Stream = Stream.PER_TENSOR
    index: int = 0  # which direction of the seed (the 2nd axis of a 2D landscape is index 1)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "normalization", Normalization(self.normalization))
            object.__setattr__(self, "selection", Selection(self.selection))
            object.__setattr__(self, "stream", Stream(self.stream))
        except ValueError as e:
            raise InvalidArgument(f"random direction: {e}") from None
        if isinstance(self.include, str) or isinstance(self.exclude, str):
            raise InvalidArgument("random direction: include/exclude are lists of patterns, not a string")
        object.__setattr__(self, "include", tuple(self.include))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise InvalidArgument(f"random direction: seed must be an integer in [0, 2**63), got {self.seed!r}")
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise InvalidArgument(f"random direction: index must be an integer >= 0, got {self.index!r}")

    def canonical(self) -> dict:
        return {
            "kind": "random",
            "seed": self.seed,
            "normalization": self.normalization.value,
            "selection": self.selection.value,
            "include": list(self.include),
            "exclude": list(self.exclude),
            "stream": self.stream.value,
            "index": self.index,
        }


@dataclass(frozen=True)
class InterpolationSpec:
    """d = target - theta0; ``target`` names a checkpoint (path or registry name, caller resolves)."""

    target: str

    def canonical(self) -> dict:
        return {"kind": "interpolation", "target": self.target}


@dataclass(frozen=True)
class AdapterSpec:
    """d = the merged LoRA delta of a PEFT adapter (path or registry name, caller resolves)."""

    adapter: str

    def canonical(self) -> dict:
        return {"kind": "adapter", "adapter": self.adapter}


DirectionSpec = RandomSpec | InterpolationSpec | AdapterSpec


def direction_id(spec: DirectionSpec) -> str:
    """Content id: "d-" + 16 hex of sha256 of the canonical JSON (sorted keys, compact)."""
    text = json.dumps(spec.canonical(), sort_keys=True, separators=(",", ":"))
    return "d-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def unique_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """The model's parameters in model order, each underlying tensor once (tied names dropped).

    ``named_parameters()`` already drops the second name of a tied Parameter; we also drop a
    distinct Parameter that shares the same storage view (same pointer, shape, stride, dtype).
    """
    seen: set[tuple] = set()
    out: list[tuple[str, torch.nn.Parameter]] = []
    for name, p in model.named_parameters():
        if p.device.type != "meta" and p.numel() > 0:
            key = (p.device, p.data_ptr(), tuple(p.shape), p.stride(), p.dtype)
            if key in seen:
                continue
            seen.add(key)
        out.append((name, p))
    return out


def is_perturbed(name: str, tensor: torch.Tensor, spec: RandomSpec) -> bool:
    """Whether a random direction is non-zero on this tensor.

    REFERENCE zeroes names containing "norm" (case-insensitive: also catches "LayerNorm");
    BIASBN zeroes every tensor with dim <= 1; ALL keeps all. include/exclude apply on top.
    """
    if spec.selection is Selection.REFERENCE and "norm" in name.lower():
        return False
    if spec.selection is Selection.BIASBN and tensor.dim() <= 1:
        return False
    if spec.include and not any(fnmatch.fnmatchcase(name, p) for p in spec.include):
        return False
    if any(fnmatch.fnmatchcase(name, p) for p in spec.exclude):
        return False
    return True


def normalize(g: torch.Tensor, w: torch.Tensor, normalization: Normalization) -> torch.Tensor:
    """Scale a raw Gaussian ``g`` to the weight ``w``; fp32 out, on g's device.

    LAYER: g / ||g|| * ||w|| (Frobenius). FILTER: the same per row (dim 0) with +1e-10 on
    ||g_i||; a tensor with dim <= 1 has no filters and is layer-normalised as a whole.
    """
    g = g.float()
    w = w.detach().to(device=g.device, dtype=torch.float32)
    if g.shape != w.shape:
        raise FailedPrecondition(f"normalize: direction shape {tuple(g.shape)} != weight shape {tuple(w.shape)}")
    normalization = Normalization(normalization)
    if normalization is Normalization.NONE or g.numel() == 0:
        return g
    if normalization is Normalization.LAYER or g.dim() <= 1:
        return g / torch.linalg.vector_norm(g) * torch.linalg.vector_norm(w)
    # FILTER: rows along dim 0; g2, w2: [rows, rest]
    g2 = g.reshape(g.shape[0], -1)
    w2 = w.reshape(w.shape[0], -1)
    gn = torch.linalg.vector_norm(g2, dim=1, keepdim=True)  # [rows, 1]
    wn = torch.linalg.vector_norm(w2, dim=1, keepdim=True)  # [rows, 1]
    return (g2 / (gn + FILTER_EPS) * wn).reshape(g.shape)


def _tensor_seed(seed: int, index: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{index}:{name}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def random_tensor(name: str, weight: torch.Tensor, spec: RandomSpec) -> torch.Tensor:
    """One tensor's component of a PER_TENSOR random direction (fp32, on weight.device).

    Drawn from its own generator seeded by sha256(f"{seed}:{index}:{name}"), so any tensor can be
    regenerated alone. The numbers depend on the device TYPE (CPU and CUDA generators differ):
    servers that must agree on a direction id must draw on the same device type.
    """
    if spec.stream is not Stream.PER_TENSOR:
        raise InvalidArgument(
            "random_tensor serves the per_tensor stream only; the reference stream must be drawn "
            "over all parameters in order (use random_direction)"
        )
    if not is_perturbed(name, weight, spec):
        return torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
    gen = torch.Generator(device=weight.device)
    gen.manual_seed(_tensor_seed(spec.seed, spec.index, name))
    g = torch.randn(weight.shape, generator=gen, dtype=torch.float32, device=weight.device)
    return normalize(g, weight, spec.normalization)


def random_direction(params: Sequence[tuple[str, torch.Tensor]], spec: RandomSpec) -> dict[str, torch.Tensor]:
    """The whole random direction, {name: fp32 tensor on the param's device}, in params order.

    REFERENCE stream (the authors'): ``torch.manual_seed(seed)`` on CPU, then draw ``index + 1``
    directions one after another, each a ``torch.randn(shape)`` for EVERY param in order (norms
    included, even though they are zeroed afterwards), and keep draw ``index``. So ``params`` must
    be ``unique_parameters(model)`` of the same architecture for the stream to line up.
    """
    if spec.stream is Stream.PER_TENSOR:
        return {name: random_tensor(name, w, spec) for name, w in params}
    gen = torch.Generator(device="cpu")
    gen.manual_seed(spec.seed)
    for _ in range(spec.index):  # advance the stream past the earlier directions
        for _name, w in params:
            torch.randn(w.shape, generator=gen, dtype=torch.float32)
    out: dict[str, torch.Tensor] = {}
    for name, w in params:
        g = torch.randn(w.shape, generator=gen, dtype=torch.float32)  # always drawn: keeps the stream
        if is_perturbed(name, w, spec):
            out[name] = normalize(g, w.detach().cpu(), spec.normalization).to(w.device)
        else:
            out[name] = torch.zeros(w.shape, dtype=torch.float32, device=w.device)
    return out


def interpolation_direction(
    params: Sequence[tuple[str, torch.Tensor]], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """d = target - theta0 in fp32 (unnormalised), on each param's device.

    Every param must be in ``target`` with the same shape. A target tensor the model does not
    hold is refused, unless it is a tied duplicate: equal in shape and value to the target
    tensor of a kept param (e.g. lm_head.weight saved beside a tied embedding).
    """
    out: dict[str, torch.Tensor] = {}
    for name, w in params:
        if name not in target:
            raise FailedPrecondition(
                f"interpolation target has no tensor {name!r} (shape {tuple(w.shape)}); the target must "
                f"be a checkpoint of the same architecture.{did_you_mean(name, target.keys())}"
            )
        t = target[name]
        if tuple(t.shape) != tuple(w.shape):
            raise FailedPrecondition(
                f"interpolation target tensor {name!r} has shape {tuple(t.shape)} but the model's has "
                f"shape {tuple(w.shape)}; the target must be a checkpoint of the same architecture"
            )
        wf = w.detach().float()
        out[name] = t.detach().to(device=wf.device, dtype=torch.float32) - wf
    kept = {name for name, _ in params}
    for name, t in target.items():
        if name in kept:
            continue
        tied = any(
            tuple(target[k].shape) == tuple(t.shape)
            and target[k].dtype == t.dtype
            and torch.equal(target[k].detach().cpu(), t.detach().cpu())
            for k in kept
        )
        if not tied:
            raise FailedPrecondition(
                f"interpolation target has tensor {name!r} (shape {tuple(t.shape)}) that the model does "
                "not have; the target must be a checkpoint of the same architecture"
            )
    return out


# PEFT keys: base_model.model.<module>.lora_A[.<adapter>].weight, ...lora_embedding_A[.<adapter>]
_LORA_KEY = re.compile(r"^(?P<module>.+)\.(?P<kind>lora_A|lora_B|lora_embedding_A|lora_embedding_B)(\.[^.]+)?(\.weight)?$")
_PEFT_PREFIX = "base_model.model."


def _pattern_value(module: str, pattern: Mapping[str, object], default):
    """PEFT's rank_pattern / alpha_pattern lookup: the first key that matches the module suffix."""
    for key, value in pattern.items():
        if re.match(rf"(.*\.)?{key}$", module):
            return value
    return default


def adapter_direction(params: Sequence[tuple[str, torch.Tensor]], adapter_dir: Path) -> dict[str, torch.Tensor]:
    """The merged delta of a PEFT LoRA adapter as a direction (fp32; zero outside its modules).

    delta_M = (B @ A) * lora_alpha / r (rslora: / sqrt(r)), transposed when fan_in_fan_out (and
    for embeddings, as PEFT does), added to the param ``<M>.weight``. rank_pattern and
    alpha_pattern are honoured. DoRA, modules_to_save and LoRA biases are refused.
    """
    from safetensors.torch import load_file

    adapter_dir = Path(adapter_dir)
    config_path = adapter_dir / "adapter_config.json"
    weights_path = adapter_dir / "adapter_model.safetensors"
    if not config_path.is_file():
        raise FailedPrecondition(f"adapter {str(adapter_dir)!r} has no adapter_config.json (a PEFT LoRA directory is expected)")
    if not weights_path.is_file():
        if (adapter_dir / "adapter_model.bin").exists():
            raise FailedPrecondition(
                f"adapter {str(adapter_dir)!r} has only adapter_model.bin; only safetensors are loaded. Convert with "
                "`PeftModel.from_pretrained(base, dir).save_pretrained(dir, safe_serialization=True)`"
            )
        raise FailedPrecondition(f"adapter {str(adapter_dir)!r} has no adapter_model.safetensors")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise FailedPrecondition(f"adapter_config.json in {str(adapter_dir)!r} is unreadable: {e}") from None
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise FailedPrecondition(f"adapter peft_type {peft_type!r} is not supported; only LORA adapters are")
    if config.get("use_dora"):
        raise FailedPrecondition("adapter uses DoRA (use_dora=true); only plain LoRA deltas are supported")
    if "r" not in config or "lora_alpha" not in config:
        raise FailedPrecondition("adapter_config.json needs 'r' and 'lora_alpha'")
    r_default, alpha_default = config["r"], config["lora_alpha"]
    rank_pattern = config.get("rank_pattern") or {}
    alpha_pattern = config.get("alpha_pattern") or {}
    rslora = bool(config.get("use_rslora", False))
    fan_in_fan_out = bool(config.get("fan_in_fan_out", False))

    state = load_file(str(weights_path))
    pairs: dict[str, dict[str, torch.Tensor]] = {}  # module -> {"A": [r, in], "B": [out, r]}
    for key, tensor in state.items():
        m = _LORA_KEY.match(key)
        if m is None:
            raise FailedPrecondition(
                f"adapter key {key!r} is not a LoRA A/B matrix (modules_to_save, DoRA magnitudes and LoRA "
                "biases are not supported)"
            )
        module = m.group("module")
        if module.startswith(_PEFT_PREFIX):
            module = module[len(_PEFT_PREFIX):]
        kind = m.group("kind")
        slot = pairs.setdefault(module, {})
        ab = kind[-1]
        if ab in slot:
            raise FailedPrecondition(f"adapter key {key!r}: a second lora_{ab} for module {module!r} (several adapters in one file?)")
        slot[ab] = tensor
        slot["embedding"] = slot.get("embedding", False) or kind.startswith("lora_embedding")

    shapes = {name: tuple(w.shape) for name, w in params}
    out = {name: torch.zeros(w.shape, dtype=torch.float32, device=w.device) for name, w in params}
    devices = {name: w.device for name, w in params}
    for module, slot in pairs.items():
        pname = module + ".weight"
        if "A" not in slot or "B" not in slot:
            missing = "lora_A" if "A" not in slot else "lora_B"
            raise FailedPrecondition(f"adapter module {module!r} has no {missing} tensor")
        if pname not in shapes:
            raise FailedPrecondition(
                f"adapter module {module!r} matches no parameter {pname!r} of the model (a tied lm_head is "
                f"held under its embedding's name).{did_you_mean(pname, shapes.keys())}"
            )
        a = slot["A"].float()  # [r, in]  (embedding: [r, vocab])
        b = slot["B"].float()  # [out, r] (embedding: [dim, r])
        if a.dim() != 2 or b.dim() != 2 or b.shape[1] != a.shape[0]:
            raise FailedPrecondition(
                f"adapter module {module!r}: lora_B {tuple(b.shape)} @ lora_A {tuple(a.shape)} is not a valid product"
            )
        r = _pattern_value(module, rank_pattern, r_default)
        alpha = _pattern_value(module, alpha_pattern, alpha_default)
        if r != a.shape[0]:
            raise FailedPrecondition(f"adapter module {module!r}: config rank {r} but lora_A has rank {a.shape[0]}")
        scale = alpha / math.sqrt(r) if rslora else alpha / r
        delta = (b @ a) * scale  # [out, in]
        if slot["embedding"] or fan_in_fan_out:
            delta = delta.T
        if tuple(delta.shape) != shapes[pname]:
            raise FailedPrecondition(
                f"adapter module {module!r}: delta shape {tuple(delta.shape)} does not match parameter "
                f"{pname!r} of shape {shapes[pname]}"
            )
        out[pname] = delta.contiguous().to(devices[pname])
    return out


_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_CONVERT_HINT = (
    "only safetensors are loaded; convert with `AutoModelForCausalLM.from_pretrained(path)"
    ".save_pretrained(path, safe_serialization=True)` on a trusted machine"
)


def load_safetensors_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a HF checkpoint: a .safetensors file, or a directory with model.safetensors
    or sharded model-0000x-of-0000y.safetensors listed in model.safetensors.index.json.
    Pickle formats (.bin/.pt/.pth) are refused: loading them can run arbitrary code."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise FailedPrecondition(f"checkpoint {str(path)!r}: {_CONVERT_HINT}")
        return load_file(str(path))
    if not path.is_dir():
        raise FailedPrecondition(f"checkpoint {str(path)!r} does not exist")
    single = path / "model.safetensors"
    index = path / "model.safetensors.index.json"
    if single.is_file():
        return load_file(str(single))
    if index.is_file():
        try:
            weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError) as e:
            raise FailedPrecondition(f"checkpoint index {str(index)!r} is unreadable: {e}") from None
        out: dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            shard_path = path / shard
            if not shard_path.is_file():
                raise FailedPrecondition(f"checkpoint shard {shard!r} listed in {index.name} is missing in {str(path)!r}")
            out.update(load_file(str(shard_path)))
        missing = [k for k in weight_map if k not in out]
        if missing:
            raise FailedPrecondition(f"checkpoint tensor {missing[0]!r} is listed in {index.name} but in no shard")
        return out
    if any(p.suffix in _PICKLE_SUFFIXES for p in path.iterdir()):
        raise FailedPrecondition(f"checkpoint {str(path)!r} holds no safetensors: {_CONVERT_HINT}")
    raise FailedPrecondition(f"checkpoint {str(path)!r} has no model.safetensors nor model.safetensors.index.json")


def direction_fingerprint(direction: Mapping[str, torch.Tensor], names: Sequence[str]) -> str:
    """sha256 hex over (name, shape, dtype, raw bytes) of each tensor in ``names`` order.

    Bit-exact: equal fingerprints mean bit-identical tensors (any dtype, bf16 included).
    """
    h = hashlib.sha256()
    for name in names:
        if name not in direction:
            raise FailedPrecondition(f"direction has no tensor {name!r} to fingerprint")
        update_tensor_hash(h, name, direction[name])
    return h.hexdigest()


def update_tensor_hash(h: "hashlib._Hash", name: str, tensor: torch.Tensor) -> None:
    """Feed one named tensor into a running sha256 (streamed fingerprints use the same bytes)."""
    t = tensor.detach().contiguous().cpu()
    h.update(f"{name}\x00{tuple(t.shape)}\x00{t.dtype}\x00".encode("utf-8"))
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def direction_norm(direction: Mapping[str, torch.Tensor]) -> float:
    """Global L2 norm over all tensors (accumulated in fp64)."""
    total = 0.0
    for t in direction.values():
        total += float(torch.linalg.vector_norm(t.detach().double()) ** 2)
    return math.sqrt(total)
