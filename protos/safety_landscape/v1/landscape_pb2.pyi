from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Normalization(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NORMALIZATION_UNSPECIFIED: _ClassVar[Normalization]
    NORMALIZATION_LAYER: _ClassVar[Normalization]
    NORMALIZATION_FILTER: _ClassVar[Normalization]
    NORMALIZATION_NONE: _ClassVar[Normalization]

class TensorSelection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TENSOR_SELECTION_UNSPECIFIED: _ClassVar[TensorSelection]
    TENSOR_SELECTION_REFERENCE: _ClassVar[TensorSelection]
    TENSOR_SELECTION_BIASBN: _ClassVar[TensorSelection]
    TENSOR_SELECTION_ALL: _ClassVar[TensorSelection]

class RandomStream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RANDOM_STREAM_UNSPECIFIED: _ClassVar[RandomStream]
    RANDOM_STREAM_PER_TENSOR: _ClassVar[RandomStream]
    RANDOM_STREAM_REFERENCE: _ClassVar[RandomStream]

class TiedParameters(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIED_PARAMETERS_UNSPECIFIED: _ClassVar[TiedParameters]
    TIED_PARAMETERS_ONCE: _ClassVar[TiedParameters]
    TIED_PARAMETERS_REFERENCE: _ClassVar[TiedParameters]

class ChatFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHAT_FORMAT_UNSPECIFIED: _ClassVar[ChatFormat]
    CHAT_FORMAT_TOKENIZER: _ClassVar[ChatFormat]
    CHAT_FORMAT_NONE: _ClassVar[ChatFormat]
    CHAT_FORMAT_LLAMA2: _ClassVar[ChatFormat]
    CHAT_FORMAT_VICUNA: _ClassVar[ChatFormat]
    CHAT_FORMAT_MISTRAL: _ClassVar[ChatFormat]
    CHAT_FORMAT_LLAMA3: _ClassVar[ChatFormat]

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    FINISH_REASON_EOS: _ClassVar[FinishReason]
    FINISH_REASON_LENGTH: _ClassVar[FinishReason]
    FINISH_REASON_KEYWORD: _ClassVar[FinishReason]
    FINISH_REASON_CANCELLED: _ClassVar[FinishReason]

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_REFUSED: _ClassVar[Outcome]
    OUTCOME_COMPLIED: _ClassVar[Outcome]
    OUTCOME_INCOHERENT: _ClassVar[Outcome]

class CoherenceTest(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COHERENCE_TEST_UNSPECIFIED: _ClassVar[CoherenceTest]
    COHERENCE_TEST_EMPTY: _ClassVar[CoherenceTest]
    COHERENCE_TEST_FLUENCY: _ClassVar[CoherenceTest]
    COHERENCE_TEST_REPETITION: _ClassVar[CoherenceTest]
    COHERENCE_TEST_RUN: _ClassVar[CoherenceTest]
NORMALIZATION_UNSPECIFIED: Normalization
NORMALIZATION_LAYER: Normalization
NORMALIZATION_FILTER: Normalization
NORMALIZATION_NONE: Normalization
TENSOR_SELECTION_UNSPECIFIED: TensorSelection
TENSOR_SELECTION_REFERENCE: TensorSelection
TENSOR_SELECTION_BIASBN: TensorSelection
TENSOR_SELECTION_ALL: TensorSelection
RANDOM_STREAM_UNSPECIFIED: RandomStream
RANDOM_STREAM_PER_TENSOR: RandomStream
RANDOM_STREAM_REFERENCE: RandomStream
TIED_PARAMETERS_UNSPECIFIED: TiedParameters
TIED_PARAMETERS_ONCE: TiedParameters
TIED_PARAMETERS_REFERENCE: TiedParameters
CHAT_FORMAT_UNSPECIFIED: ChatFormat
CHAT_FORMAT_TOKENIZER: ChatFormat
CHAT_FORMAT_NONE: ChatFormat
CHAT_FORMAT_LLAMA2: ChatFormat
CHAT_FORMAT_VICUNA: ChatFormat
CHAT_FORMAT_MISTRAL: ChatFormat
CHAT_FORMAT_LLAMA3: ChatFormat
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_EOS: FinishReason
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_KEYWORD: FinishReason
FINISH_REASON_CANCELLED: FinishReason
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_REFUSED: Outcome
OUTCOME_COMPLIED: Outcome
OUTCOME_INCOHERENT: Outcome
COHERENCE_TEST_UNSPECIFIED: CoherenceTest
COHERENCE_TEST_EMPTY: CoherenceTest
COHERENCE_TEST_FLUENCY: CoherenceTest
COHERENCE_TEST_REPETITION: CoherenceTest
COHERENCE_TEST_RUN: CoherenceTest

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model_name", "architecture", "parameter_count", "dtype", "device", "model_fingerprint", "tokenizer", "server_version", "limits", "memory", "torch_version", "device_type", "load_seconds", "memory_plan", "transformers_version", "cuda_version", "device_name", "referee")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    TORCH_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    LOAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_PLAN_FIELD_NUMBER: _ClassVar[int]
    TRANSFORMERS_VERSION_FIELD_NUMBER: _ClassVar[int]
    CUDA_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    REFEREE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    architecture: str
    parameter_count: int
    dtype: str
    device: str
    model_fingerprint: str
    tokenizer: TokenizerInfo
    server_version: str
    limits: ServerLimits
    memory: MemoryReport
    torch_version: str
    device_type: str
    load_seconds: float
    memory_plan: MemoryPlan
    transformers_version: str
    cuda_version: str
    device_name: str
    referee: RefereeInfo
    def __init__(self, model_name: _Optional[str] = ..., architecture: _Optional[str] = ..., parameter_count: _Optional[int] = ..., dtype: _Optional[str] = ..., device: _Optional[str] = ..., model_fingerprint: _Optional[str] = ..., tokenizer: _Optional[_Union[TokenizerInfo, _Mapping]] = ..., server_version: _Optional[str] = ..., limits: _Optional[_Union[ServerLimits, _Mapping]] = ..., memory: _Optional[_Union[MemoryReport, _Mapping]] = ..., torch_version: _Optional[str] = ..., device_type: _Optional[str] = ..., load_seconds: _Optional[float] = ..., memory_plan: _Optional[_Union[MemoryPlan, _Mapping]] = ..., transformers_version: _Optional[str] = ..., cuda_version: _Optional[str] = ..., device_name: _Optional[str] = ..., referee: _Optional[_Union[RefereeInfo, _Mapping]] = ...) -> None: ...

class MemoryPlan(_message.Message):
    __slots__ = ("devices", "direction_storage", "pristine", "fits", "batch_size", "prompt_tokens", "new_tokens", "max_directions")
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_STORAGE_FIELD_NUMBER: _ClassVar[int]
    PRISTINE_FIELD_NUMBER: _ClassVar[int]
    FITS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_DIRECTIONS_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[DeviceMemoryPlan]
    direction_storage: str
    pristine: str
    fits: bool
    batch_size: int
    prompt_tokens: int
    new_tokens: int
    max_directions: int
    def __init__(self, devices: _Optional[_Iterable[_Union[DeviceMemoryPlan, _Mapping]]] = ..., direction_storage: _Optional[str] = ..., pristine: _Optional[str] = ..., fits: _Optional[bool] = ..., batch_size: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., new_tokens: _Optional[int] = ..., max_directions: _Optional[int] = ...) -> None: ...

class DeviceMemoryPlan(_message.Message):
    __slots__ = ("device", "model_bytes", "pristine_bytes", "directions_bytes", "scratch_bytes", "kv_cache_bytes", "activation_bytes", "runtime_bytes", "total_bytes", "capacity_bytes", "fits")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MODEL_BYTES_FIELD_NUMBER: _ClassVar[int]
    PRISTINE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DIRECTIONS_BYTES_FIELD_NUMBER: _ClassVar[int]
    SCRATCH_BYTES_FIELD_NUMBER: _ClassVar[int]
    KV_CACHE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_BYTES_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_BYTES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_BYTES_FIELD_NUMBER: _ClassVar[int]
    FITS_FIELD_NUMBER: _ClassVar[int]
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
    def __init__(self, device: _Optional[str] = ..., model_bytes: _Optional[int] = ..., pristine_bytes: _Optional[int] = ..., directions_bytes: _Optional[int] = ..., scratch_bytes: _Optional[int] = ..., kv_cache_bytes: _Optional[int] = ..., activation_bytes: _Optional[int] = ..., runtime_bytes: _Optional[int] = ..., total_bytes: _Optional[int] = ..., capacity_bytes: _Optional[int] = ..., fits: _Optional[bool] = ...) -> None: ...

class TokenizerInfo(_message.Message):
    __slots__ = ("tokenizer_class", "vocab_size", "has_chat_template", "chat_template_sha256", "default_system_prompt", "eos_token", "pad_token", "tokenizer_fingerprint")
    TOKENIZER_CLASS_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    HAS_CHAT_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    CHAT_TEMPLATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    EOS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAD_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    tokenizer_class: str
    vocab_size: int
    has_chat_template: bool
    chat_template_sha256: str
    default_system_prompt: str
    eos_token: str
    pad_token: str
    tokenizer_fingerprint: str
    def __init__(self, tokenizer_class: _Optional[str] = ..., vocab_size: _Optional[int] = ..., has_chat_template: _Optional[bool] = ..., chat_template_sha256: _Optional[str] = ..., default_system_prompt: _Optional[str] = ..., eos_token: _Optional[str] = ..., pad_token: _Optional[str] = ..., tokenizer_fingerprint: _Optional[str] = ...) -> None: ...

class ServerLimits(_message.Message):
    __slots__ = ("max_batch_size", "max_new_tokens", "max_prompts_per_request", "max_prompt_tokens", "max_message_bytes", "max_directions", "max_abs_coefficient", "direction_storage", "max_queued_jobs_per_tenant", "max_queued_jobs", "max_directions_per_tenant", "max_points_per_request", "max_text_chars", "max_score_tokens", "max_score_candidates", "max_keywords", "max_keyword_bytes", "max_terms", "max_direction_patterns", "max_reference_index", "max_name_chars", "max_job_memory_bytes", "max_batch_tokens", "queue_reserve", "tenant_direction_slots", "max_streams", "max_streams_per_tenant", "stream_send_timeout_seconds", "max_health_watches")
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_PROMPTS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_DIRECTIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_ABS_COEFFICIENT_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_STORAGE_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUED_JOBS_PER_TENANT_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUED_JOBS_FIELD_NUMBER: _ClassVar[int]
    MAX_DIRECTIONS_PER_TENANT_FIELD_NUMBER: _ClassVar[int]
    MAX_POINTS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXT_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_SCORE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_SCORE_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    MAX_KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    MAX_KEYWORD_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_TERMS_FIELD_NUMBER: _ClassVar[int]
    MAX_DIRECTION_PATTERNS_FIELD_NUMBER: _ClassVar[int]
    MAX_REFERENCE_INDEX_FIELD_NUMBER: _ClassVar[int]
    MAX_NAME_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_JOB_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_RESERVE_FIELD_NUMBER: _ClassVar[int]
    TENANT_DIRECTION_SLOTS_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_PER_TENANT_FIELD_NUMBER: _ClassVar[int]
    STREAM_SEND_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_HEALTH_WATCHES_FIELD_NUMBER: _ClassVar[int]
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
    def __init__(self, max_batch_size: _Optional[int] = ..., max_new_tokens: _Optional[int] = ..., max_prompts_per_request: _Optional[int] = ..., max_prompt_tokens: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_directions: _Optional[int] = ..., max_abs_coefficient: _Optional[float] = ..., direction_storage: _Optional[str] = ..., max_queued_jobs_per_tenant: _Optional[int] = ..., max_queued_jobs: _Optional[int] = ..., max_directions_per_tenant: _Optional[int] = ..., max_points_per_request: _Optional[int] = ..., max_text_chars: _Optional[int] = ..., max_score_tokens: _Optional[int] = ..., max_score_candidates: _Optional[int] = ..., max_keywords: _Optional[int] = ..., max_keyword_bytes: _Optional[int] = ..., max_terms: _Optional[int] = ..., max_direction_patterns: _Optional[int] = ..., max_reference_index: _Optional[int] = ..., max_name_chars: _Optional[int] = ..., max_job_memory_bytes: _Optional[int] = ..., max_batch_tokens: _Optional[int] = ..., queue_reserve: _Optional[int] = ..., tenant_direction_slots: _Optional[int] = ..., max_streams: _Optional[int] = ..., max_streams_per_tenant: _Optional[int] = ..., stream_send_timeout_seconds: _Optional[float] = ..., max_health_watches: _Optional[int] = ...) -> None: ...

class MemoryReport(_message.Message):
    __slots__ = ("model_bytes", "pristine_bytes", "directions_bytes", "device_bytes_in_use")
    MODEL_BYTES_FIELD_NUMBER: _ClassVar[int]
    PRISTINE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DIRECTIONS_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_BYTES_IN_USE_FIELD_NUMBER: _ClassVar[int]
    model_bytes: int
    pristine_bytes: int
    directions_bytes: int
    device_bytes_in_use: int
    def __init__(self, model_bytes: _Optional[int] = ..., pristine_bytes: _Optional[int] = ..., directions_bytes: _Optional[int] = ..., device_bytes_in_use: _Optional[int] = ...) -> None: ...

class Term(_message.Message):
    __slots__ = ("direction_id", "spec", "coefficient")
    DIRECTION_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    COEFFICIENT_FIELD_NUMBER: _ClassVar[int]
    direction_id: str
    spec: DirectionSpec
    coefficient: float
    def __init__(self, direction_id: _Optional[str] = ..., spec: _Optional[_Union[DirectionSpec, _Mapping]] = ..., coefficient: _Optional[float] = ...) -> None: ...

class Perturbation(_message.Message):
    __slots__ = ("terms",)
    TERMS_FIELD_NUMBER: _ClassVar[int]
    terms: _containers.RepeatedCompositeFieldContainer[Term]
    def __init__(self, terms: _Optional[_Iterable[_Union[Term, _Mapping]]] = ...) -> None: ...

class WeightState(_message.Message):
    __slots__ = ("fingerprint", "terms", "weights_sha256", "apply_seconds")
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_SHA256_FIELD_NUMBER: _ClassVar[int]
    APPLY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    terms: _containers.RepeatedCompositeFieldContainer[AppliedTerm]
    weights_sha256: str
    apply_seconds: float
    def __init__(self, fingerprint: _Optional[str] = ..., terms: _Optional[_Iterable[_Union[AppliedTerm, _Mapping]]] = ..., weights_sha256: _Optional[str] = ..., apply_seconds: _Optional[float] = ...) -> None: ...

class AppliedTerm(_message.Message):
    __slots__ = ("direction_id", "coefficient")
    DIRECTION_ID_FIELD_NUMBER: _ClassVar[int]
    COEFFICIENT_FIELD_NUMBER: _ClassVar[int]
    direction_id: str
    coefficient: float
    def __init__(self, direction_id: _Optional[str] = ..., coefficient: _Optional[float] = ...) -> None: ...

class RandomDirectionSpec(_message.Message):
    __slots__ = ("seed", "normalization", "selection", "include", "exclude", "stream", "index", "tied")
    SEED_FIELD_NUMBER: _ClassVar[int]
    NORMALIZATION_FIELD_NUMBER: _ClassVar[int]
    SELECTION_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TIED_FIELD_NUMBER: _ClassVar[int]
    seed: int
    normalization: Normalization
    selection: TensorSelection
    include: _containers.RepeatedScalarFieldContainer[str]
    exclude: _containers.RepeatedScalarFieldContainer[str]
    stream: RandomStream
    index: int
    tied: TiedParameters
    def __init__(self, seed: _Optional[int] = ..., normalization: _Optional[_Union[Normalization, str]] = ..., selection: _Optional[_Union[TensorSelection, str]] = ..., include: _Optional[_Iterable[str]] = ..., exclude: _Optional[_Iterable[str]] = ..., stream: _Optional[_Union[RandomStream, str]] = ..., index: _Optional[int] = ..., tied: _Optional[_Union[TiedParameters, str]] = ...) -> None: ...

class InterpolationDirectionSpec(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: str
    def __init__(self, target: _Optional[str] = ...) -> None: ...

class AdapterDirectionSpec(_message.Message):
    __slots__ = ("adapter",)
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    adapter: str
    def __init__(self, adapter: _Optional[str] = ...) -> None: ...

class DirectionSpec(_message.Message):
    __slots__ = ("random", "interpolation", "adapter")
    RANDOM_FIELD_NUMBER: _ClassVar[int]
    INTERPOLATION_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    random: RandomDirectionSpec
    interpolation: InterpolationDirectionSpec
    adapter: AdapterDirectionSpec
    def __init__(self, random: _Optional[_Union[RandomDirectionSpec, _Mapping]] = ..., interpolation: _Optional[_Union[InterpolationDirectionSpec, _Mapping]] = ..., adapter: _Optional[_Union[AdapterDirectionSpec, _Mapping]] = ...) -> None: ...

class Direction(_message.Message):
    __slots__ = ("id", "spec", "fingerprint", "bytes_held", "perturbed_tensors", "total_tensors", "created", "create_seconds", "norm", "owner", "admin_owned")
    ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    BYTES_HELD_FIELD_NUMBER: _ClassVar[int]
    PERTURBED_TENSORS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TENSORS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    CREATE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NORM_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    ADMIN_OWNED_FIELD_NUMBER: _ClassVar[int]
    id: str
    spec: DirectionSpec
    fingerprint: str
    bytes_held: int
    perturbed_tensors: int
    total_tensors: int
    created: bool
    create_seconds: float
    norm: float
    owner: str
    admin_owned: bool
    def __init__(self, id: _Optional[str] = ..., spec: _Optional[_Union[DirectionSpec, _Mapping]] = ..., fingerprint: _Optional[str] = ..., bytes_held: _Optional[int] = ..., perturbed_tensors: _Optional[int] = ..., total_tensors: _Optional[int] = ..., created: _Optional[bool] = ..., create_seconds: _Optional[float] = ..., norm: _Optional[float] = ..., owner: _Optional[str] = ..., admin_owned: _Optional[bool] = ...) -> None: ...

class CreateDirectionRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: DirectionSpec
    def __init__(self, spec: _Optional[_Union[DirectionSpec, _Mapping]] = ...) -> None: ...

class ListDirectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDirectionsResponse(_message.Message):
    __slots__ = ("directions", "memory")
    DIRECTIONS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    directions: _containers.RepeatedCompositeFieldContainer[Direction]
    memory: MemoryReport
    def __init__(self, directions: _Optional[_Iterable[_Union[Direction, _Mapping]]] = ..., memory: _Optional[_Union[MemoryReport, _Mapping]] = ...) -> None: ...

class DeleteDirectionRequest(_message.Message):
    __slots__ = ("direction_id",)
    DIRECTION_ID_FIELD_NUMBER: _ClassVar[int]
    direction_id: str
    def __init__(self, direction_id: _Optional[str] = ...) -> None: ...

class DeleteDirectionResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class SetCoefficientsRequest(_message.Message):
    __slots__ = ("perturbation", "verify")
    PERTURBATION_FIELD_NUMBER: _ClassVar[int]
    VERIFY_FIELD_NUMBER: _ClassVar[int]
    perturbation: Perturbation
    verify: bool
    def __init__(self, perturbation: _Optional[_Union[Perturbation, _Mapping]] = ..., verify: _Optional[bool] = ...) -> None: ...

class ListRegistryRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RegistryEntry(_message.Message):
    __slots__ = ("name", "kind")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class ListRegistryResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[RegistryEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[RegistryEntry, _Mapping]]] = ...) -> None: ...

class SystemPrompt(_message.Message):
    __slots__ = ("preset", "text")
    PRESET_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    preset: str
    text: str
    def __init__(self, preset: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class GenerationSettings(_message.Message):
    __slots__ = ("max_new_tokens", "do_sample", "seed", "temperature", "top_p")
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DO_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    max_new_tokens: int
    do_sample: bool
    seed: int
    temperature: float
    top_p: float
    def __init__(self, max_new_tokens: _Optional[int] = ..., do_sample: _Optional[bool] = ..., seed: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ...) -> None: ...

class Completion(_message.Message):
    __slots__ = ("text", "prompt_tokens", "completion_tokens", "finish_reason")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    def __init__(self, text: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("queue_seconds", "apply_weights_seconds", "prefill_seconds", "decode_seconds", "judge_seconds", "total_seconds", "referee_seconds")
    QUEUE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    APPLY_WEIGHTS_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PREFILL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DECODE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    JUDGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REFEREE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    queue_seconds: float
    apply_weights_seconds: float
    prefill_seconds: float
    decode_seconds: float
    judge_seconds: float
    total_seconds: float
    referee_seconds: float
    def __init__(self, queue_seconds: _Optional[float] = ..., apply_weights_seconds: _Optional[float] = ..., prefill_seconds: _Optional[float] = ..., decode_seconds: _Optional[float] = ..., judge_seconds: _Optional[float] = ..., total_seconds: _Optional[float] = ..., referee_seconds: _Optional[float] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("prompts", "system_prompt", "chat_format", "generation", "perturbation")
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    CHAT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    PERTURBATION_FIELD_NUMBER: _ClassVar[int]
    prompts: _containers.RepeatedScalarFieldContainer[str]
    system_prompt: SystemPrompt
    chat_format: ChatFormat
    generation: GenerationSettings
    perturbation: Perturbation
    def __init__(self, prompts: _Optional[_Iterable[str]] = ..., system_prompt: _Optional[_Union[SystemPrompt, _Mapping]] = ..., chat_format: _Optional[_Union[ChatFormat, str]] = ..., generation: _Optional[_Union[GenerationSettings, _Mapping]] = ..., perturbation: _Optional[_Union[Perturbation, _Mapping]] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("completions", "weight_state", "timings", "generated_tokens")
    COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_STATE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    completions: _containers.RepeatedCompositeFieldContainer[Completion]
    weight_state: WeightState
    timings: Timings
    generated_tokens: int
    def __init__(self, completions: _Optional[_Iterable[_Union[Completion, _Mapping]]] = ..., weight_state: _Optional[_Union[WeightState, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., generated_tokens: _Optional[int] = ...) -> None: ...

class PromptSource(_message.Message):
    __slots__ = ("inline", "set_name", "limit")
    INLINE_FIELD_NUMBER: _ClassVar[int]
    SET_NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    inline: InlinePrompts
    set_name: str
    limit: int
    def __init__(self, inline: _Optional[_Union[InlinePrompts, _Mapping]] = ..., set_name: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class InlinePrompts(_message.Message):
    __slots__ = ("prompts",)
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    prompts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, prompts: _Optional[_Iterable[str]] = ...) -> None: ...

class ListPromptSetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PromptSetInfo(_message.Message):
    __slots__ = ("name", "size", "sha256", "source_format", "kind")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    sha256: str
    source_format: str
    kind: str
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., source_format: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class ListPromptSetsResponse(_message.Message):
    __slots__ = ("sets",)
    SETS_FIELD_NUMBER: _ClassVar[int]
    sets: _containers.RepeatedCompositeFieldContainer[PromptSetInfo]
    def __init__(self, sets: _Optional[_Iterable[_Union[PromptSetInfo, _Mapping]]] = ...) -> None: ...

class KeywordJudge(_message.Message):
    __slots__ = ("keywords",)
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    keywords: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, keywords: _Optional[_Iterable[str]] = ...) -> None: ...

class ClassifierJudge(_message.Message):
    __slots__ = ("name", "fingerprint")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    fingerprint: str
    def __init__(self, name: _Optional[str] = ..., fingerprint: _Optional[str] = ...) -> None: ...

class ClassifierVerdict(_message.Message):
    __slots__ = ("judge", "fingerprint", "label", "categories", "probability", "threshold")
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    judge: str
    fingerprint: str
    label: str
    categories: _containers.RepeatedScalarFieldContainer[str]
    probability: float
    threshold: float
    def __init__(self, judge: _Optional[str] = ..., fingerprint: _Optional[str] = ..., label: _Optional[str] = ..., categories: _Optional[_Iterable[str]] = ..., probability: _Optional[float] = ..., threshold: _Optional[float] = ...) -> None: ...

class JudgeSpec(_message.Message):
    __slots__ = ("keyword", "classifier")
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    keyword: KeywordJudge
    classifier: ClassifierJudge
    def __init__(self, keyword: _Optional[_Union[KeywordJudge, _Mapping]] = ..., classifier: _Optional[_Union[ClassifierJudge, _Mapping]] = ...) -> None: ...

class EvaluationSettings(_message.Message):
    __slots__ = ("prompts", "system_prompt", "chat_format", "generation", "generation_preset", "judge", "return_completions", "disable_early_stop", "disable_referee")
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    CHAT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    GENERATION_PRESET_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    RETURN_COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    DISABLE_EARLY_STOP_FIELD_NUMBER: _ClassVar[int]
    DISABLE_REFEREE_FIELD_NUMBER: _ClassVar[int]
    prompts: PromptSource
    system_prompt: SystemPrompt
    chat_format: ChatFormat
    generation: GenerationSettings
    generation_preset: str
    judge: JudgeSpec
    return_completions: bool
    disable_early_stop: bool
    disable_referee: bool
    def __init__(self, prompts: _Optional[_Union[PromptSource, _Mapping]] = ..., system_prompt: _Optional[_Union[SystemPrompt, _Mapping]] = ..., chat_format: _Optional[_Union[ChatFormat, str]] = ..., generation: _Optional[_Union[GenerationSettings, _Mapping]] = ..., generation_preset: _Optional[str] = ..., judge: _Optional[_Union[JudgeSpec, _Mapping]] = ..., return_completions: _Optional[bool] = ..., disable_early_stop: _Optional[bool] = ..., disable_referee: _Optional[bool] = ...) -> None: ...

class EvaluateSafetyRequest(_message.Message):
    __slots__ = ("settings", "perturbation")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    PERTURBATION_FIELD_NUMBER: _ClassVar[int]
    settings: EvaluationSettings
    perturbation: Perturbation
    def __init__(self, settings: _Optional[_Union[EvaluationSettings, _Mapping]] = ..., perturbation: _Optional[_Union[Perturbation, _Mapping]] = ...) -> None: ...

class Verdict(_message.Message):
    __slots__ = ("index", "jailbroken", "matched_keyword", "classifier_output", "prompt_tokens", "completion_tokens", "finish_reason", "completion", "outcome", "coherence", "classifier")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    JAILBROKEN_FIELD_NUMBER: _ClassVar[int]
    MATCHED_KEYWORD_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    COHERENCE_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    index: int
    jailbroken: bool
    matched_keyword: str
    classifier_output: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    completion: str
    outcome: Outcome
    coherence: Coherence
    classifier: ClassifierVerdict
    def __init__(self, index: _Optional[int] = ..., jailbroken: _Optional[bool] = ..., matched_keyword: _Optional[str] = ..., classifier_output: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ..., completion: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., coherence: _Optional[_Union[Coherence, _Mapping]] = ..., classifier: _Optional[_Union[ClassifierVerdict, _Mapping]] = ...) -> None: ...

class EvaluateSafetyResponse(_message.Message):
    __slots__ = ("asr", "jailbroken", "total", "verdicts", "weight_state", "timings", "prompt_set", "system_prompt_sha256", "generated_tokens", "tokens_saved", "judge", "refused", "complied", "incoherent", "refusal_rate", "coherent_asr", "incoherent_rate", "referee")
    ASR_FIELD_NUMBER: _ClassVar[int]
    JAILBROKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_STATE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_SET_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_SHA256_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_SAVED_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    COMPLIED_FIELD_NUMBER: _ClassVar[int]
    INCOHERENT_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_RATE_FIELD_NUMBER: _ClassVar[int]
    COHERENT_ASR_FIELD_NUMBER: _ClassVar[int]
    INCOHERENT_RATE_FIELD_NUMBER: _ClassVar[int]
    REFEREE_FIELD_NUMBER: _ClassVar[int]
    asr: float
    jailbroken: int
    total: int
    verdicts: _containers.RepeatedCompositeFieldContainer[Verdict]
    weight_state: WeightState
    timings: Timings
    prompt_set: PromptSetInfo
    system_prompt_sha256: str
    generated_tokens: int
    tokens_saved: int
    judge: str
    refused: int
    complied: int
    incoherent: int
    refusal_rate: float
    coherent_asr: float
    incoherent_rate: float
    referee: RefereeReport
    def __init__(self, asr: _Optional[float] = ..., jailbroken: _Optional[int] = ..., total: _Optional[int] = ..., verdicts: _Optional[_Iterable[_Union[Verdict, _Mapping]]] = ..., weight_state: _Optional[_Union[WeightState, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., prompt_set: _Optional[_Union[PromptSetInfo, _Mapping]] = ..., system_prompt_sha256: _Optional[str] = ..., generated_tokens: _Optional[int] = ..., tokens_saved: _Optional[int] = ..., judge: _Optional[str] = ..., refused: _Optional[int] = ..., complied: _Optional[int] = ..., incoherent: _Optional[int] = ..., refusal_rate: _Optional[float] = ..., coherent_asr: _Optional[float] = ..., incoherent_rate: _Optional[float] = ..., referee: _Optional[_Union[RefereeReport, _Mapping]] = ...) -> None: ...

class EvaluatePointsRequest(_message.Message):
    __slots__ = ("settings", "points")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    settings: EvaluationSettings
    points: _containers.RepeatedCompositeFieldContainer[Perturbation]
    def __init__(self, settings: _Optional[_Union[EvaluationSettings, _Mapping]] = ..., points: _Optional[_Iterable[_Union[Perturbation, _Mapping]]] = ...) -> None: ...

class PointResult(_message.Message):
    __slots__ = ("index", "result")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    index: int
    result: EvaluateSafetyResponse
    def __init__(self, index: _Optional[int] = ..., result: _Optional[_Union[EvaluateSafetyResponse, _Mapping]] = ...) -> None: ...

class ScoreItem(_message.Message):
    __slots__ = ("context", "continuation")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_FIELD_NUMBER: _ClassVar[int]
    context: str
    continuation: str
    def __init__(self, context: _Optional[str] = ..., continuation: _Optional[str] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("items", "perturbation", "next_token_candidates")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    PERTURBATION_FIELD_NUMBER: _ClassVar[int]
    NEXT_TOKEN_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ScoreItem]
    perturbation: Perturbation
    next_token_candidates: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, items: _Optional[_Iterable[_Union[ScoreItem, _Mapping]]] = ..., perturbation: _Optional[_Union[Perturbation, _Mapping]] = ..., next_token_candidates: _Optional[_Iterable[str]] = ...) -> None: ...

class ScoreResult(_message.Message):
    __slots__ = ("logprob", "num_tokens", "token_logprobs", "is_greedy", "candidate_logits")
    LOGPROB_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    IS_GREEDY_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_LOGITS_FIELD_NUMBER: _ClassVar[int]
    logprob: float
    num_tokens: int
    token_logprobs: _containers.RepeatedScalarFieldContainer[float]
    is_greedy: bool
    candidate_logits: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, logprob: _Optional[float] = ..., num_tokens: _Optional[int] = ..., token_logprobs: _Optional[_Iterable[float]] = ..., is_greedy: _Optional[bool] = ..., candidate_logits: _Optional[_Iterable[float]] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("results", "weight_state", "timings")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_STATE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScoreResult]
    weight_state: WeightState
    timings: Timings
    def __init__(self, results: _Optional[_Iterable[_Union[ScoreResult, _Mapping]]] = ..., weight_state: _Optional[_Union[WeightState, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ...) -> None: ...

class Coherence(_message.Message):
    __slots__ = ("coherent", "failed", "nll", "scored_tokens", "words", "repeated_ngram_fraction", "repeated_token_ngram_fraction", "longest_word_run", "longest_token_run")
    COHERENT_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    NLL_FIELD_NUMBER: _ClassVar[int]
    SCORED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    REPEATED_NGRAM_FRACTION_FIELD_NUMBER: _ClassVar[int]
    REPEATED_TOKEN_NGRAM_FRACTION_FIELD_NUMBER: _ClassVar[int]
    LONGEST_WORD_RUN_FIELD_NUMBER: _ClassVar[int]
    LONGEST_TOKEN_RUN_FIELD_NUMBER: _ClassVar[int]
    coherent: bool
    failed: _containers.RepeatedScalarFieldContainer[CoherenceTest]
    nll: float
    scored_tokens: int
    words: int
    repeated_ngram_fraction: float
    repeated_token_ngram_fraction: float
    longest_word_run: int
    longest_token_run: int
    def __init__(self, coherent: _Optional[bool] = ..., failed: _Optional[_Iterable[_Union[CoherenceTest, str]]] = ..., nll: _Optional[float] = ..., scored_tokens: _Optional[int] = ..., words: _Optional[int] = ..., repeated_ngram_fraction: _Optional[float] = ..., repeated_token_ngram_fraction: _Optional[float] = ..., longest_word_run: _Optional[int] = ..., longest_token_run: _Optional[int] = ...) -> None: ...

class RefereeThresholds(_message.Message):
    __slots__ = ("id", "max_nll", "max_repetition", "max_run", "rule", "model_fingerprint", "calibration_prompts_sha256", "calibration_answers", "calibration_max_new_tokens", "calibration_chat_format", "calibration_seconds")
    ID_FIELD_NUMBER: _ClassVar[int]
    MAX_NLL_FIELD_NUMBER: _ClassVar[int]
    MAX_REPETITION_FIELD_NUMBER: _ClassVar[int]
    MAX_RUN_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_PROMPTS_SHA256_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_ANSWERS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_CHAT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    max_nll: float
    max_repetition: float
    max_run: int
    rule: str
    model_fingerprint: str
    calibration_prompts_sha256: str
    calibration_answers: int
    calibration_max_new_tokens: int
    calibration_chat_format: str
    calibration_seconds: float
    def __init__(self, id: _Optional[str] = ..., max_nll: _Optional[float] = ..., max_repetition: _Optional[float] = ..., max_run: _Optional[int] = ..., rule: _Optional[str] = ..., model_fingerprint: _Optional[str] = ..., calibration_prompts_sha256: _Optional[str] = ..., calibration_answers: _Optional[int] = ..., calibration_max_new_tokens: _Optional[int] = ..., calibration_chat_format: _Optional[str] = ..., calibration_seconds: _Optional[float] = ...) -> None: ...

class RefereeReport(_message.Message):
    __slots__ = ("ran", "thresholds", "mode")
    RAN_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    ran: bool
    thresholds: RefereeThresholds
    mode: str
    def __init__(self, ran: _Optional[bool] = ..., thresholds: _Optional[_Union[RefereeThresholds, _Mapping]] = ..., mode: _Optional[str] = ...) -> None: ...

class RefereeInfo(_message.Message):
    __slots__ = ("rule", "calibration_prompts", "calibrations", "mode")
    RULE_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_PROMPTS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATIONS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    rule: str
    calibration_prompts: PromptSetInfo
    calibrations: _containers.RepeatedCompositeFieldContainer[RefereeThresholds]
    mode: str
    def __init__(self, rule: _Optional[str] = ..., calibration_prompts: _Optional[_Union[PromptSetInfo, _Mapping]] = ..., calibrations: _Optional[_Iterable[_Union[RefereeThresholds, _Mapping]]] = ..., mode: _Optional[str] = ...) -> None: ...

class PromptRef(_message.Message):
    __slots__ = ("set_name", "index")
    SET_NAME_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    set_name: str
    index: int
    def __init__(self, set_name: _Optional[str] = ..., index: _Optional[int] = ...) -> None: ...

class JudgeRow(_message.Message):
    __slots__ = ("prompt_text", "prompt_ref", "completion", "system_prompt", "chat_format")
    PROMPT_TEXT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_REF_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    CHAT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    prompt_text: str
    prompt_ref: PromptRef
    completion: str
    system_prompt: SystemPrompt
    chat_format: ChatFormat
    def __init__(self, prompt_text: _Optional[str] = ..., prompt_ref: _Optional[_Union[PromptRef, _Mapping]] = ..., completion: _Optional[str] = ..., system_prompt: _Optional[_Union[SystemPrompt, _Mapping]] = ..., chat_format: _Optional[_Union[ChatFormat, str]] = ...) -> None: ...

class JudgeRequest(_message.Message):
    __slots__ = ("rows", "judge", "max_new_tokens")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[JudgeRow]
    judge: JudgeSpec
    max_new_tokens: int
    def __init__(self, rows: _Optional[_Iterable[_Union[JudgeRow, _Mapping]]] = ..., judge: _Optional[_Union[JudgeSpec, _Mapping]] = ..., max_new_tokens: _Optional[int] = ...) -> None: ...

class JudgedRow(_message.Message):
    __slots__ = ("index", "jailbroken", "refused", "matched_keyword", "unsafe", "classifier_output", "outcome", "coherence", "prompt_tokens", "completion_tokens")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    JAILBROKEN_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    MATCHED_KEYWORD_FIELD_NUMBER: _ClassVar[int]
    UNSAFE_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    COHERENCE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    index: int
    jailbroken: bool
    refused: bool
    matched_keyword: str
    unsafe: bool
    classifier_output: str
    outcome: Outcome
    coherence: Coherence
    prompt_tokens: int
    completion_tokens: int
    def __init__(self, index: _Optional[int] = ..., jailbroken: _Optional[bool] = ..., refused: _Optional[bool] = ..., matched_keyword: _Optional[str] = ..., unsafe: _Optional[bool] = ..., classifier_output: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., coherence: _Optional[_Union[Coherence, _Mapping]] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ...) -> None: ...

class JudgeResponse(_message.Message):
    __slots__ = ("rows", "judge", "referee", "weight_state", "timings")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    REFEREE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_STATE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[JudgedRow]
    judge: str
    referee: RefereeReport
    weight_state: WeightState
    timings: Timings
    def __init__(self, rows: _Optional[_Iterable[_Union[JudgedRow, _Mapping]]] = ..., judge: _Optional[str] = ..., referee: _Optional[_Union[RefereeReport, _Mapping]] = ..., weight_state: _Optional[_Union[WeightState, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ...) -> None: ...
