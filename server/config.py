"""Server settings: one dataclass, filled from command-line flags or ``VISAGE_*`` variables."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    max_batch_size: int = 64  # large batches pay on GPU and CPU alike; OOM halves and retries
    max_new_tokens: int = 1024
    max_prompts_per_request: int = 1024
    max_prompt_tokens: int = 2048
    max_message_bytes: int = 16 * 1024 * 1024
    max_directions: int = 16
    max_directions_per_tenant: int = 0  # 0: no per-tenant cap
    max_abs_coefficient: float = 10.0
    max_queued_jobs: int = 64
    max_queued_jobs_per_tenant: int = 16
    max_points_per_request: int = 1024


@dataclass(frozen=True)
class ServerConfig:
    model: str = "tiny-random"
    listen: str = "127.0.0.1:50051"
    device: str = "auto"
    dtype: str = "auto"
    metrics_port: int = 0  # 0: no metrics endpoint
    direction_storage: str = "cache"
    limits: Limits = field(default_factory=Limits)
    registry: str = ""  # TOML file of checkpoints/adapters
    prompt_sets: tuple[tuple[str, str], ...] = ()  # (name, path[:kind])
    judge_model: str = ""  # classifier judge model ("" = none)
    tokens_file: str = ""
    tokens_env: str = ""  # "name:token[:admin],..." (from VISAGE_TOKENS)
    require_auth: bool = False
    open_health: bool = True
    open_reflection: bool = True
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    grace_seconds: float = 30.0
    log_format: str = "auto"  # auto | json | console
    warmup: bool = True
