"""Direction maths: what a direction IS, tensor by tensor (docs/method.md, "Perturbing a model").

The package owns the direction specs and their content ids (``specs``), random layer/filter-
normalised directions regenerable one tensor at a time from the spec alone (``gaussian``),
interpolation directions between two checkpoints and safetensors loading (``checkpoint``),
LoRA-adapter directions (``adapter``), and the named-tensor helpers: unique parameters,
fingerprints, norms (``tensors``). It does not apply directions to a model (theta0 + sum c_i d_i
lives with weight application, ``engine/weights.py``).

Conventions:
- Every direction tensor is fp32, whatever the weight dtype (bf16 weights are read as fp32).
- Directions are keyed by the names of ``unique_parameters(model)``: a tied tensor (embedding ==
  lm_head) appears once, under its first name, and so is perturbed exactly once (``tied =
  "once"``); ``tied = "reference"`` (``tied``) adds a draw for each of its names, as the authors do.
- All errors are ``safety_landscape.server.errors`` exceptions whose message names the tensor/key.
"""

from .adapter import adapter_direction
from .checkpoint import interpolation_direction, load_safetensors_checkpoint
from .gaussian import FILTER_EPS, is_perturbed, normalize, random_direction, random_tensor
from .specs import AdapterSpec, DirectionSpec, InterpolationSpec, Normalization, RandomSpec, Selection, Stream, Tied, direction_id
from .tensors import direction_fingerprint, direction_norm, unique_parameters, update_tensor_hash
from .tied import parameter_aliases, reference_tied_direction

__all__ = [
    "FILTER_EPS",
    "AdapterSpec",
    "DirectionSpec",
    "InterpolationSpec",
    "Normalization",
    "RandomSpec",
    "Selection",
    "Stream",
    "Tied",
    "adapter_direction",
    "direction_fingerprint",
    "direction_id",
    "direction_norm",
    "interpolation_direction",
    "is_perturbed",
    "load_safetensors_checkpoint",
    "normalize",
    "parameter_aliases",
    "random_direction",
    "random_tensor",
    "reference_tied_direction",
    "unique_parameters",
    "update_tensor_hash",
]
