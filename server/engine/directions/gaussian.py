"""Random directions: seeded Gaussian tensors, normalised to the weights layer by layer (the
paper's) or filter by filter (Li et al. 2018), regenerable one tensor at a time from the spec
(the per-tensor stream) or drawn in the reference implementation's single CPU stream."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Sequence

import torch

from safety_landscape.server.errors import FailedPrecondition, InvalidArgument

from .specs import Normalization, RandomSpec, Selection, Stream, Tied

__all__ = ["FILTER_EPS", "is_perturbed", "normalize", "random_direction", "random_tensor"]

FILTER_EPS = 1e-10  # Li et al. 2018: d_i = g_i / (||g_i|| + 1e-10) * ||W_i||



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
    return not any(fnmatch.fnmatchcase(name, p) for p in spec.exclude)


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
        layer: torch.Tensor = g / torch.linalg.vector_norm(g) * torch.linalg.vector_norm(w)
        return layer
    # FILTER: rows along dim 0; g2, w2: [rows, rest]
    g2 = g.reshape(g.shape[0], -1)
    w2 = w.reshape(w.shape[0], -1)
    gn = torch.linalg.vector_norm(g2, dim=1, keepdim=True)  # [rows, 1]
    wn = torch.linalg.vector_norm(w2, dim=1, keepdim=True)  # [rows, 1]
    filtered: torch.Tensor = (g2 / (gn + FILTER_EPS) * wn).reshape(g.shape)
    return filtered


def _tensor_seed(seed: int, index: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{index}:{name}".encode()).digest()
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
    if spec.tied is not Tied.ONCE:
        raise InvalidArgument("random_direction draws each tensor once; tied = reference is reference_tied_direction's")
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
