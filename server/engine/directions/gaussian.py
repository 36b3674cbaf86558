"""Random directions: seeded Gaussian tensors, normalised to the weights layer by layer (the
paper's) or filter by filter (Li et al. 2018), regenerable one tensor at a time from the spec
(the per-tensor stream) or drawn in the reference implementation's single CPU stream.

Tensor by tensor, for storage that does not hold whole directions (``sources.py``):
``draw_per_tensor`` redraws a per-tensor component's raw Gaussian from the spec alone;
``ReferenceStream`` walks the authors' stream once and records the CPU generator's state at the
start of every perturbed tensor, so that tensor can be redrawn alone (``redraw``), bit for bit;
``StreamPositions`` remembers where each draw of a seed starts, so drawing index 2 after index 1
does not replay draws 0 and 1; ``Scale`` is the normalisation of one drawn tensor (its norms),
applied in place, bit-identical to ``normalize``."""

from __future__ import annotations

import fnmatch
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from safety_landscape.server.errors import Cancelled, FailedPrecondition, InvalidArgument

from .specs import Normalization, RandomSpec, Selection, Stream, Tied

__all__ = [
    "FILTER_EPS", "ReferenceStream", "Scale", "StreamPositions", "draw_per_tensor", "is_perturbed", "normalize",
    "random_direction", "random_tensor", "redraw", "stop_if_cancelled", "stream_key", "weight_norm",
]

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
    return normalize(draw_per_tensor(name, weight, spec), weight, spec.normalization)


def draw_per_tensor(name: str, weight: torch.Tensor, spec: RandomSpec) -> torch.Tensor:
    """The raw fp32 Gaussian of one tensor of a PER_TENSOR direction, on weight.device (before
    normalisation): its own generator, seeded by sha256(f"{seed}:{index}:{name}")."""
    gen = torch.Generator(device=weight.device)
    gen.manual_seed(_tensor_seed(spec.seed, spec.index, name))
    return torch.randn(weight.shape, generator=gen, dtype=torch.float32, device=weight.device)


def _never() -> bool:
    return False


def random_direction(
    params: Sequence[tuple[str, torch.Tensor]], spec: RandomSpec, *, should_cancel: Callable[[], bool] = _never
) -> dict[str, torch.Tensor]:
    """The whole random direction, {name: fp32 tensor on the param's device}, in params order.

    REFERENCE stream (the authors'): ``torch.manual_seed(seed)`` on CPU, then draw ``index + 1``
    directions one after another, each a ``torch.randn(shape)`` for EVERY param in order (norms
    included, even though they are zeroed afterwards), and keep draw ``index``. So ``params`` must
    be ``unique_parameters(model)`` of the same architecture for the stream to line up.
    ``should_cancel`` is checked before every tensor drawn (Cancelled when it says so).
    """
    if spec.tied is not Tied.ONCE:
        raise InvalidArgument("random_direction draws each tensor once; tied = reference is reference_tied_direction's")
    if spec.stream is Stream.PER_TENSOR:
        return {name: random_tensor(name, w, spec) for name, w in params}
    gen = torch.Generator(device="cpu")
    gen.manual_seed(spec.seed)
    for _ in range(spec.index):  # advance the stream past the earlier directions
        for _name, w in params:
            stop_if_cancelled(should_cancel)
            torch.randn(w.shape, generator=gen, dtype=torch.float32)
    out: dict[str, torch.Tensor] = {}
    for name, w in params:
        stop_if_cancelled(should_cancel)
        g = torch.randn(w.shape, generator=gen, dtype=torch.float32)  # always drawn: keeps the stream
        if is_perturbed(name, w, spec):
            out[name] = normalize(g, w.detach().cpu(), spec.normalization).to(w.device)
        else:
            out[name] = torch.zeros(w.shape, dtype=torch.float32, device=w.device)
    return out


# -- one tensor at a time: norms kept, the reference stream's states recorded -------------------


def _scaled_kind(shape: torch.Size, normalization: Normalization) -> Normalization:
    """How ``normalize`` scales a tensor of this shape: NONE (also for an empty tensor), LAYER
    (also FILTER on a tensor with dim <= 1) or FILTER."""
    normalization = Normalization(normalization)
    if normalization is Normalization.NONE or shape.numel() == 0:
        return Normalization.NONE
    if normalization is Normalization.LAYER or len(shape) <= 1:
        return Normalization.LAYER
    return Normalization.FILTER


def weight_norm(w: torch.Tensor, normalization: Normalization, *, device: torch.device) -> torch.Tensor | None:
    """The weight's side of ``normalize``: ||w|| (LAYER) or the rows' norms [rows, 1] (FILTER),
    from ``w`` in fp32 on ``device`` (where ``normalize`` would compute it); None for NONE."""
    kind = _scaled_kind(w.shape, normalization)
    if kind is Normalization.NONE:
        return None
    w32 = w.detach().to(device=device, dtype=torch.float32)
    if kind is Normalization.LAYER:
        norm: torch.Tensor = torch.linalg.vector_norm(w32)
    else:
        norm = torch.linalg.vector_norm(w32.reshape(w32.shape[0], -1), dim=1, keepdim=True)
    return norm


@dataclass(frozen=True)
class Scale:
    """One drawn tensor's normalisation: g / divisor * factor, in place (divisor = ||g||, or the
    rows' ||g_i|| + 1e-10; factor = ||w||, or the rows' ||w_i||). Elementwise the same IEEE
    operations as ``normalize``, so the same bits; kept, it rescales a redrawn g without the weight."""

    divisor: torch.Tensor
    factor: torch.Tensor

    @classmethod
    def fit(cls, g: torch.Tensor, factor: torch.Tensor | None) -> Scale | None:
        """The scale that ``normalize`` gives ``g`` against a weight of norm(s) ``factor``."""
        if factor is None:
            return None
        if factor.dim() == 0:
            return cls(torch.linalg.vector_norm(g), factor)
        return cls(torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1, keepdim=True) + FILTER_EPS, factor)

    def apply(self, g: torch.Tensor) -> torch.Tensor:
        view = g if self.divisor.dim() == 0 else g.view(g.shape[0], -1)
        view.div_(self.divisor).mul_(self.factor)
        return g


class StreamPositions:
    """Where the draws of a reference stream start: (stream key, seed, draw index) -> the CPU
    generator's state, so building draw k+1 after draw k starts where draw k ended. Bounded (LRU)."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._states: OrderedDict[tuple[str, int, int], torch.Tensor] = OrderedDict()

    def nearest(self, key: str, seed: int, index: int) -> tuple[int, torch.Tensor | None]:
        """The latest known draw start at or before ``index`` (0, None: the seed itself). Looks
        through the states held (at most ``capacity``), not the indices: an index may be huge."""
        known = [k for stream, s, k in self._states if stream == key and s == seed and 0 < k <= index]
        if not known:
            return 0, None
        start = max(known)
        self._states.move_to_end((key, seed, start))
        return start, self._states[(key, seed, start)]

    def put(self, key: str, seed: int, index: int, state: torch.Tensor) -> None:
        self._states[(key, seed, index)] = state
        self._states.move_to_end((key, seed, index))
        while len(self._states) > self.capacity:
            self._states.popitem(last=False)


def stream_key(shapes: Sequence[tuple[str, tuple[int, ...]]]) -> str:
    """Names a reference stream's draw list (the shapes it draws, in order)."""
    return hashlib.sha256(repr([tuple(s) for _, s in shapes]).encode()).hexdigest()[:16]


class ReferenceStream:
    """The authors' stream for ``spec`` over ``shapes`` (every param, in order): draw ``index``,
    one tensor at a time, with the generator's state recorded before each perturbed tensor."""

    def __init__(self, shapes: Sequence[tuple[str, tuple[int, ...]]], spec: RandomSpec,
                 positions: StreamPositions | None = None, *, should_cancel: Callable[[], bool] = _never) -> None:
        self.shapes = list(shapes)
        self.spec = spec
        self.positions = positions or StreamPositions()
        self.key = stream_key(self.shapes)
        self.should_cancel = should_cancel  # asked before every tensor drawn to advance the stream

    def _generator_at_draw(self) -> torch.Generator:
        gen = torch.Generator(device="cpu")
        start, state = self.positions.nearest(self.key, self.spec.seed, self.spec.index)
        if state is None:
            gen.manual_seed(self.spec.seed)
        else:
            gen.set_state(state)
        for k in range(start, self.spec.index):  # advance past the earlier draws, a tensor at a time
            for _name, shape in self.shapes:
                stop_if_cancelled(self.should_cancel)
                torch.randn(shape, generator=gen, dtype=torch.float32)
            self.positions.put(self.key, self.spec.seed, k + 1, gen.get_state())
        return gen

    def draws(self, perturbed: set[str]) -> Iterator[tuple[str, torch.Tensor | None, Callable[[], torch.Tensor]]]:
        """(name, the state before its draw or None when not perturbed, a call that draws its raw
        fp32 Gaussian), every param in order. The call must come before the next item: the draw
        is made then (so a consumer may free memory before it), or passed over when the item is
        left (a tensor that is zeroed is still drawn: it keeps the stream)."""
        gen = self._generator_at_draw()
        for name, shape in self.shapes:
            state = gen.get_state() if name in perturbed else None
            drawn: list[bool] = []

            def draw(shape: tuple[int, ...] = shape, drawn: list[bool] = drawn) -> torch.Tensor:
                drawn.append(True)
                return torch.randn(shape, generator=gen, dtype=torch.float32)

            yield name, state, draw
            if not drawn:
                draw()
        self.positions.put(self.key, self.spec.seed, self.spec.index + 1, gen.get_state())


def redraw(state: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """The raw fp32 Gaussian a CPU generator in ``state`` draws next (``ReferenceStream.draws``)."""
    gen = torch.Generator(device="cpu")
    gen.set_state(state)
    return torch.randn(shape, generator=gen, dtype=torch.float32)
def stop_if_cancelled(should_cancel: Callable[[], bool]) -> None:
    if should_cancel():
        raise Cancelled("the call was cancelled or its deadline passed; drawing the direction was stopped")
