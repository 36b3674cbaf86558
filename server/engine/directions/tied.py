"""The authors' rule for tied parameters (``tied = "reference"``): a direction drawn for every
name of the state dict, each name's draw added to the tensor it shares (docs/method.md, "Tied
embeddings").

A model with tied embeddings holds one tensor under two names (``model.embed_tokens.weight`` and
``lm_head.weight``). The reference walks ``state_dict()``, which lists both, so its CPU stream
(``torch.manual_seed(seed)``, one ``randn`` per name, norms included) draws once for each name,
and both draws are added to the one shared tensor. This module reproduces exactly that: every
name's draw is bit-identical to the authors', and the shared tensor's direction is the fp32 sum
of its names' draws, in state-dict order. On a model without tied tensors it equals the
reference stream of :func:`~.gaussian.random_direction` bit for bit.

Kept apart from :mod:`.gaussian` on purpose: only *which names are drawn* and *how draws map to
tensors* differ; the drawing, the selection and the normalisation are :mod:`.gaussian`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from safety_landscape.server.errors import FailedPrecondition

from .gaussian import is_perturbed, normalize, stop_if_cancelled
from .specs import RandomSpec, Stream, Tied
from .tensors import unique_parameters

__all__ = ["parameter_aliases", "reference_tied_direction"]

# (state-dict name, the unique-parameter name whose tensor it is; None for a buffer)
Alias = tuple[str, str | None]


def _storage_key(p: torch.Tensor) -> tuple[Any, ...]:
    return (p.device, p.data_ptr(), tuple(p.shape), p.stride(), p.dtype)


def parameter_aliases(model: torch.nn.Module) -> list[Alias]:
    """Every name of ``model.state_dict()`` in its order, each with the name under which
    :func:`~.tensors.unique_parameters` holds that tensor (a tied name maps to its first name;
    a persistent buffer maps to None)."""
    owners: dict[Any, str] = {}
    for name, p in unique_parameters(model):
        owners[id(p)] = name
        if p.device.type != "meta" and p.numel() > 0:
            owners.setdefault(_storage_key(p), name)
    out: list[Alias] = []
    for name, value in model.state_dict(keep_vars=True).items():
        if not isinstance(value, torch.nn.Parameter):
            out.append((name, None))
            continue
        owner = owners.get(id(value))
        if owner is None and value.device.type != "meta" and value.numel() > 0:
            owner = owners.get(_storage_key(value))
        out.append((name, owner if owner is not None else name))
    return out


def reference_tied_direction(
    params: Sequence[tuple[str, torch.Tensor]], aliases: Sequence[Alias], spec: RandomSpec,
    *, should_cancel: Callable[[], bool] = lambda: False,
) -> dict[str, torch.Tensor]:
    """Draw ``spec.index`` of the authors' stream with a draw for every state-dict name.

    ``params``: the unique parameters (their pristine weights); ``aliases``:
    :func:`parameter_aliases` of the same model. Returns {unique name: fp32 tensor on the
    param's device}, in ``params`` order. Selection (norm names zeroed, include/exclude) is
    decided per state-dict name, as the reference does; each draw is normalised to the shared
    weight. FailedPrecondition when the state dict holds buffers: the reference would draw (and
    add) a direction for each of them too, which no parameter direction can reproduce.
    ``should_cancel`` is checked before every tensor drawn (Cancelled when it says so).
    """
    if spec.tied is not Tied.REFERENCE or spec.stream is not Stream.REFERENCE:
        raise FailedPrecondition("reference_tied_direction serves tied = reference on the reference stream only")
    buffers = [name for name, owner in aliases if owner is None]
    if buffers:
        raise FailedPrecondition(
            f"tied = \"reference\" cannot reproduce the authors' stream on this model: its state dict holds "
            f"{len(buffers)} buffer(s) (first {buffers[0]!r}) that the reference would draw and perturb too; "
            'use tied = "once"'
        )
    weights = dict(params)
    drawn = [(name, owner) for name, owner in aliases if owner is not None]
    unknown = [owner for _, owner in drawn if owner not in weights] + [n for n in weights if n not in dict(drawn).values()]
    if unknown:
        raise FailedPrecondition(f"the state-dict names and the parameters disagree on {unknown[0]!r}: not the same model")
    gen = torch.Generator(device="cpu")
    gen.manual_seed(spec.seed)
    for _ in range(spec.index):  # advance the stream past the earlier directions
        for _name, owner in drawn:
            stop_if_cancelled(should_cancel)
            torch.randn(weights[owner].shape, generator=gen, dtype=torch.float32)
    sums: dict[str, torch.Tensor] = {}
    for name, owner in drawn:
        stop_if_cancelled(should_cancel)
        w = weights[owner]
        g = torch.randn(w.shape, generator=gen, dtype=torch.float32)  # always drawn: keeps the stream
        d = normalize(g, w.detach().cpu(), spec.normalization) if is_perturbed(name, w, spec) else torch.zeros_like(g)
        sums[owner] = d if owner not in sums else sums[owner] + d
    return {name: sums[name].to(w.device) for name, w in params}
