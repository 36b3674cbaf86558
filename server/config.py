"""Server settings: the dataclasses, each setting declared once with its flag, variable, bounds and help.

A field declared with ``setting(default, help, ...)`` is a ``visage-server`` flag (``--field-name``
unless ``flag`` says otherwise) and a ``VISAGE_*`` environment variable (the flag's name in upper
case unless ``env`` says otherwise); its type is the field's annotation (int, float, str, bool,
or a tuple of items read by ``item``). ``config_parser.py`` builds the parser and reads the environment
from these declarations, so adding a setting is one line here. Fields declared without
``setting`` (``warmup``) are for code and tests only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Limits", "ServerConfig", "Setting", "check_listen", "parse_prompt_set", "setting"]

T = TypeVar("T")
CALL_SPARE = 16  # request threads beyond queued jobs and streams (Limits.calls_per_tenant / calls_in_flight)


@dataclass(frozen=True)
class Setting:
    """How one configuration field is set from outside: its flag, variable, bounds and help."""

    help: str
    flag: str = ""  # "" -> "--" + the field name with dashes
    env: str = ""  # "" -> "VISAGE_" + the flag's name in upper case
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    item: Callable[[str], Any] | None = None  # a tuple setting: reads one item (a repeated flag, a comma-separated variable)
    rule: Callable[[Any], None] | None = None  # a check of the value's form: ValueError saying what to write
    cli: bool = True  # False: environment only (a secret: a flag's value shows in the process list)


def setting(default: T, help: str, **how: Any) -> T:
    """A dataclass field with ``default`` whose ``Setting(help, **how)`` rides in the field's metadata."""
    return field(default=default, metadata={"setting": Setting(help, **how)})


def parse_prompt_set(item: str) -> tuple[str, str]:
    """``NAME=PATH[:harmful|benign]`` -> (name, path[:kind])."""
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
        raise ValueError("use NAME=PATH[:harmful|benign]")
    return name, path


def check_listen(address: str) -> None:
    """``HOST:PORT`` (``[IPv6]:PORT``; port 0 picks one) or a ``unix:`` socket path. Without a port
    grpc would bind 443 without a word, so a missing or non-numeric port is refused."""
    if address.startswith(("unix:", "unix-abstract:")):
        return
    host, sep, port = address.rpartition(":")
    unbracketed_ipv6 = ":" in host and not (host.startswith("[") and host.endswith("]"))
    if not sep or not port.isdigit() or int(port) > 65535 or unbracketed_ipv6:
        given = host if sep and not unbracketed_ipv6 else address  # the host the user seems to mean
        plain = given and (":" not in given or (given.startswith("[") and given.endswith("]")))
        example = f"{given}:50051" if plain else "127.0.0.1:50051 or [::1]:50051"
        raise ValueError(f"use HOST:PORT with a port in 0-65535 (0 picks a free one), e.g. {example}")
    if not host:
        raise ValueError(f"no host: use HOST:PORT, e.g. 127.0.0.1:{port} (this machine only) or 0.0.0.0:{port} (every interface)")


@dataclass(frozen=True)
class Limits:
    """Every bound a request meets before its work starts (docs/operations.md, "Limits").

    ``check`` holds the rules between settings (a start-up error, not a request error); the
    ``*_effective`` helpers resolve the settings whose 0 means "derived from another one".
    """

    max_batch_size: int = setting(
        64, "sequences per forward pass (a device out-of-memory halves the batch and retries)", minimum=1
    )  # large batches pay on GPU and CPU alike
    max_new_tokens: int = setting(1024, "largest max_new_tokens accepted", minimum=1)
    max_prompts_per_request: int = setting(1024, "prompts per request", flag="--max-prompts", minimum=1)
    max_prompt_tokens: int = setting(2048, "tokens per prompt", minimum=1)
    max_message_bytes: int = setting(16 * 1024 * 1024, "request size", minimum=1)
    max_directions: int = setting(16, "directions held; LRU eviction beyond", minimum=1)
    max_directions_per_tenant: int = setting(0, "0 = no cap", minimum=0)
    max_abs_coefficient: float = setting(10.0, "largest |coefficient| of a perturbation term", minimum=0.0)
    max_queued_jobs: int = setting(64, "jobs queued in all", flag="--queue-size", minimum=1)
    max_queued_jobs_per_tenant: int = setting(16, "jobs queued per tenant", flag="--queue-per-tenant", minimum=1)
    max_points_per_request: int = setting(1024, "points per EvaluatePoints call", flag="--max-points", minimum=1)
    # -- what one request may carry (checked on the request's thread, before it queues)
    max_text_chars: int = setting(
        65536, "characters in one text (prompt, system prompt, Score context or continuation), checked before tokenising",
        minimum=1,
    )
    max_score_tokens: int = setting(4096, "tokens per Score item (context + continuation)", minimum=1)
    max_score_candidates: int = setting(64, "next-token candidates per Score call", minimum=0)
    max_keywords: int = setting(256, "judge keywords per request", minimum=1)
    max_keyword_bytes: int = setting(16384, "judge keywords per request, in UTF-8 bytes all together", minimum=1)
    max_terms: int = setting(8, "terms per perturbation", minimum=1)
    max_direction_patterns: int = setting(64, "include and exclude patterns of a random direction", minimum=0)
    max_reference_index: int = setting(
        16, "largest draw index of a reference-stream direction (its cost grows with the index)", minimum=0
    )
    max_name_chars: int = setting(256, "characters in an id or a name (direction, prompt set, preset, pattern)", minimum=1)
    # -- memory: a job's estimated peak (KV cache and activations) is split into batches that fit, or refused
    max_job_memory_bytes: int = setting(
        0, "memory one job may use on the device; 0 = 80%% of the device memory free after loading "
        "(CPU: half of the available memory)", minimum=0,
    )
    max_batch_tokens: int = setting(
        16384, "prompt tokens in one forward pass: bounds how long one uncancellable step takes", minimum=1
    )
    # -- sharing the server between tenants
    queue_reserve: int = setting(
        0, "queue slots kept for tenants with nothing queued; 0 = an eighth of --queue-size (at least 1)", minimum=0
    )
    tenant_direction_slots: int = setting(
        4, "directions a non-admin tenant's terms may hold; its next one replaces its least recently used one",
        minimum=1,
    )
    max_streams: int = setting(16, "EvaluatePoints streams open at once, over every tenant", minimum=1)
    max_streams_per_tenant: int = setting(4, "EvaluatePoints streams one tenant may have open", minimum=1)
    stream_send_timeout_seconds: float = setting(
        30.0, "a stream whose client has not taken a result for this long is cancelled", minimum=0.1
    )
    max_health_watches: int = setting(16, "open health Watch streams", minimum=1)

    def queue_reserve_effective(self) -> int:
        return self.queue_reserve or max(1, self.max_queued_jobs // 8)

    def calls_per_tenant(self) -> int:
        """Work calls (not health, info or listings) one tenant may have in progress: its queued
        jobs and streams, and room for a burst of calls that the queue will refuse at once."""
        return self.max_queued_jobs_per_tenant + self.max_streams_per_tenant + CALL_SPARE

    def calls_in_flight(self) -> int:
        """Work calls in progress over every tenant: each holds one request thread."""
        return self.max_queued_jobs + self.max_streams + 2 * CALL_SPARE

    def check(self) -> None:
        """The rules between settings; ValueError naming the flags and values (a start-up error)."""
        problems = []
        if self.max_queued_jobs_per_tenant >= self.max_queued_jobs:
            problems.append(
                f"--queue-per-tenant ({self.max_queued_jobs_per_tenant}) must be below --queue-size "
                f"({self.max_queued_jobs}), so one tenant at its limit leaves room for the others"
            )
        if self.queue_reserve_effective() >= self.max_queued_jobs:
            problems.append(f"--queue-reserve ({self.queue_reserve}) must be below --queue-size ({self.max_queued_jobs})")
        if self.max_streams_per_tenant > self.max_streams:
            problems.append(
                f"--max-streams-per-tenant ({self.max_streams_per_tenant}) must not exceed --max-streams ({self.max_streams})"
            )
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class ServerConfig:
    model: str = setting(
        "tiny-random", "tiny-random, smollm2-135m-instruct (built in: SmolLM2-135M-Instruct as a Q4_1 GGUF, dequantised), "
        "a .gguf file, a Hugging Face directory with safetensors, or a Hub id (ORG/NAME[@REVISION]) found in the local "
        "Hugging Face cache (HF_HOME); HuggingFaceTB/SmolLM2-135M-Instruct not in the cache is the built-in"
    )
    revision: str = setting(
        "", "the revision of a Hub id to take from the local cache: a branch, tag or commit (or --model ORG/NAME@REVISION)"
    )
    listen: str = setting("127.0.0.1:50051", "HOST:PORT to listen on; port 0 picks one", rule=check_listen)
    model_name: str = setting("", "the model's display name in reports and plots (default: the --model value)")
    device: str = setting("auto", "auto, cpu, cuda or cuda:N")
    device_map: str = setting(
        "", "shard a safetensors model over the GPUs: auto (fill in order), balanced, or a JSON file of module -> "
        "device (default: the whole model on --device)"
    )
    dtype: str = setting("auto", "auto, float32, bfloat16 or float16")
    metrics_port: int = setting(0, "Prometheus /metrics port, 0 = off", minimum=0, maximum=65535)
    direction_storage: str = setting(
        "auto", "directions: cache (whole, on the device), regenerate (per-tensor random ones redrawn, the rest "
        "held), stream (every kind produced tensor by tensor at each switch), host (whole, in host memory); "
        "auto: cache when all max_directions of them fit in a twentieth of the device, else stream",
        choices=("auto", "cache", "regenerate", "stream", "host"),
    )
    pristine: str = setting(
        "auto", "where theta0 is kept: device, host (pinned memory), checkpoint (re-read from the safetensors "
        "files); auto: device when the plan fits, else host, else checkpoint (on a CPU: checkpoint when loaded from one)",
        choices=("auto", "device", "host", "checkpoint"),
    )
    memory_check: bool = setting(True, "refuse to start when the memory plan does not fit (see --memory-plan)")
    limits: Limits = field(default_factory=Limits)
    registry: str = setting("", "TOML file naming checkpoints and adapters clients may use")
    prompt_sets: tuple[tuple[str, str], ...] = setting(
        (), "NAME=PATH[:harmful|benign], repeatable: a prompt file clients may name",
        flag="--prompt-set", env="VISAGE_PROMPT_SETS", item=parse_prompt_set,
    )
    judge_model: str = setting("", "a guard model for the classifier judge (same forms as --model)")
    judge_format: str = setting(
        "auto", "the --judge-model's guard format; auto: told from its chat template (an error when it cannot "
        "be told, or when a named format does not match the checkpoint)",
        choices=("auto", "llama-guard-2", "llama-guard-3", "llama-guard-3-1b", "qwen3guard-gen", "shieldgemma",
                 "harmbench-llama2-cls"),
    )
    judge_threshold: float = setting(
        0.5, "ShieldGemma: an answer is unsafe when P(Yes) reaches this", minimum=0.0, maximum=1.0
    )
    tokens_file: str = setting("", "TOML file of tenants and token hashes")
    tokens_env: str = setting(
        "", "tenants and tokens as name:token[:admin],...", env="VISAGE_TOKENS", cli=False
    )
    require_auth: bool = setting(False, "require a bearer token on every call; also on when tokens are configured")
    open_health: bool = setting(True, "answer the health service without a token")
    open_reflection: bool = setting(True, "answer reflection without a token")
    tls_cert: str = setting("", "server certificate (PEM): TLS")
    tls_key: str = setting("", "the certificate's private key (PEM)")
    tls_client_ca: str = setting("", "CA for client certificates: mutual TLS")
    grace_seconds: float = setting(30.0, "drain time on SIGTERM", minimum=0.0)
    log_format: str = setting("auto", "log lines as JSON or for a terminal", choices=("auto", "json", "console"))
    port_file: str = setting("", "write the bound port here once listening (for scripts and tests)")
    warmup: bool = True
