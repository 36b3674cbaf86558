"""What a server holds and accepts, as :class:`~.client.Client` returns it: its facts and limits
(:class:`ServerInfo`, from GetInfo), its directions and the operator's registry. Frozen
dataclasses read from the replies by their fields (:mod:`.proto_reply`); each keeps its message
as ``.proto``. What a call's work returns: :mod:`.call_results`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from safety_landscape.v1 import landscape_pb2 as pb

from .proto_reply import ProtoReply

__all__ = ["DeviceMemoryPlan", "DirectionInfo", "DirectionList", "MemoryPlan", "MemoryReport", "RegistryEntry",
           "ServerInfo", "ServerLimits", "TokenizerInfo"]


# -- the server's facts (GetInfo) ----------------------------------------------------------------


@dataclass(frozen=True)
class TokenizerInfo(ProtoReply):
    """The loaded tokenizer, as far as it changes prompts and scores."""

    message_type = pb.TokenizerInfo
    tokenizer_class: str
    vocab_size: int
    has_chat_template: bool
    chat_template_sha256: str
    default_system_prompt: str
    eos_token: str
    pad_token: str
    tokenizer_fingerprint: str
    proto: pb.TokenizerInfo = field(repr=False, compare=False)


@dataclass(frozen=True)
class ServerLimits(ProtoReply):
    """The limits the server enforces (each field's meaning: the contract's ``ServerLimits``)."""

    message_type = pb.ServerLimits
    max_batch_size: int
    max_new_tokens: int
    max_prompts_per_request: int
    max_prompt_tokens: int
    max_message_bytes: int
    max_directions: int
    max_abs_coefficient: float
    direction_storage: str
    max_queued_jobs_per_tenant: int
    max_queued_jobs: int
    max_directions_per_tenant: int
    max_points_per_request: int
    max_text_chars: int
    max_score_tokens: int
    max_score_candidates: int
    max_keywords: int
    max_keyword_bytes: int
    max_terms: int
    max_direction_patterns: int
    max_reference_index: int
    max_name_chars: int
    max_job_memory_bytes: int
    max_batch_tokens: int
    queue_reserve: int
    tenant_direction_slots: int
    max_streams: int
    max_streams_per_tenant: int
    stream_send_timeout_seconds: float
    max_health_watches: int
    proto: pb.ServerLimits = field(repr=False, compare=False)


@dataclass(frozen=True)
class MemoryReport(ProtoReply):
    """Memory the server holds, in bytes."""

    message_type = pb.MemoryReport
    model_bytes: int
    pristine_bytes: int
    directions_bytes: int
    device_bytes_in_use: int
    proto: pb.MemoryReport = field(repr=False, compare=False)


@dataclass(frozen=True)
class DeviceMemoryPlan(ProtoReply):
    """One device's share of the memory plan, in bytes (docs/memory.md)."""

    message_type = pb.DeviceMemoryPlan
    device: str
    model_bytes: int
    pristine_bytes: int
    directions_bytes: int
    scratch_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    runtime_bytes: int
    total_bytes: int
    capacity_bytes: int
    fits: bool
    proto: pb.DeviceMemoryPlan = field(repr=False, compare=False)


@dataclass(frozen=True)
class MemoryPlan(ProtoReply):
    """The bytes each device holds while the server sweeps at its limits (docs/memory.md)."""

    message_type = pb.MemoryPlan
    devices: tuple[DeviceMemoryPlan, ...]
    direction_storage: str
    pristine: str
    fits: bool
    batch_size: int
    prompt_tokens: int
    new_tokens: int
    max_directions: int
    proto: pb.MemoryPlan = field(repr=False, compare=False)


@dataclass(frozen=True)
class ServerInfo(ProtoReply):
    """What a server runs and what it accepts: :meth:`Client.info`'s result.

    Example::

        with Client("127.0.0.1:50051") as c:
            info = c.info()
        print(info.model_name, info.model_fingerprint[:12], info.limits.max_new_tokens)
    """

    message_type = pb.ModelInfo
    model_name: str
    architecture: str
    parameter_count: int
    dtype: str
    device: str
    device_type: str
    device_name: str
    model_fingerprint: str
    tokenizer: TokenizerInfo
    server_version: str
    torch_version: str
    transformers_version: str
    cuda_version: str
    load_seconds: float
    limits: ServerLimits
    memory: MemoryReport
    memory_plan: MemoryPlan
    referee: pb.RefereeInfo  # the coherence referee: its rule, calibration prompts, calibrations so far, mode
    proto: pb.ModelInfo = field(repr=False, compare=False)


# -- directions and the registry ----------------------------------------------------------------


@dataclass(frozen=True)
class DirectionInfo(ProtoReply):
    """A direction the server holds (``spec`` is the protobuf spec it was made from):
    :meth:`Client.create_direction`'s result.

    Example::

        d = c.create_direction(random_direction(123, stream="reference"))
        print(d.id, d.kind, d.fingerprint[:16], d.created)
    """

    message_type = pb.Direction
    id: str
    spec: pb.DirectionSpec
    fingerprint: str
    bytes_held: int
    perturbed_tensors: int
    total_tensors: int
    created: bool
    create_seconds: float
    norm: float
    owner: str
    admin_owned: bool
    proto: pb.Direction = field(repr=False, compare=False)

    @property
    def kind(self) -> str:
        """"random", "interpolation" or "adapter"."""
        return self.spec.WhichOneof("kind") or ""


@dataclass(frozen=True)
class DirectionList(ProtoReply):
    """The directions a server holds and its memory: :meth:`Client.list_directions`'s result.

    Example::

        held = c.list_directions()
        print([d.id for d in held.directions], held.memory.directions_bytes)
    """

    message_type = pb.ListDirectionsResponse
    directions: tuple[DirectionInfo, ...]
    memory: MemoryReport
    proto: pb.ListDirectionsResponse = field(repr=False, compare=False)


@dataclass(frozen=True)
class RegistryEntry(ProtoReply):
    """A checkpoint or adapter the server's operator registered (``kind``: "checkpoint" or "adapter").

    Example::

        for e in c.list_registry():
            print(e.name, e.kind)
    """

    message_type = pb.RegistryEntry
    name: str
    kind: str
    proto: pb.RegistryEntry = field(repr=False, compare=False)
