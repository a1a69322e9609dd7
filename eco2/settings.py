"""One typed settings object per process.

Every value comes from the environment (prefix ``ECO2_``, nested delimiter ``__``) or from the
defaults below; nothing else in the code base reads ``os.environ``. Each infrastructure part is
reached through a URL: an unset URL means "use the embedded one the launcher started", and the
launcher passes the embedded URLs to its children through the same variables
(``ECO2_DB__URL``, ``ECO2_CACHE__URL``, ``ECO2_KAFKA__BOOTSTRAP``, ``ECO2_MODEL__BASE_URL`` ...).

An invalid value fails at start-up with the field's name (see :func:`load_settings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DOMAIN_DATABASES: tuple[str, ...] = (
    "auth",
    "character",
    "my",
    "scan",
    "chat",
    "location",
    "image",
    "notification",
)
"""One database per domain (architecture.md §5). The database name is ``<prefix><domain>``."""

Port = Annotated[int, Field(ge=0, le=65535)]


class SettingsError(ValueError):
    """Raised at start-up when a setting is invalid; the message names the field(s)."""


class ModelSettings(BaseModel):
    """The one model path: the ``openai`` SDK against ``base_url`` with ``api_key``.

    Unset ``base_url`` means the local model simulator started by ``eco2 up``.
    """

    base_url: str | None = None
    api_key: SecretStr = SecretStr("sim-local-key")
    vision_model: str = "gpt-5.2"
    answer_model: str = "gpt-5.2"
    supported_models: tuple[str, ...] = ("gpt-5.2", "gpt-5.1", "gpt-4o", "gpt-4o-mini")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    request_timeout_s: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=2000, ge=1)
    keepalive_s: float = Field(default=30.0, gt=0)
    """How long an idle model connection is kept: longer than the gap between two model calls,
    so connections are reused instead of closed and reopened (docs/benchmarks.md)."""
    max_retries: int = Field(default=3, ge=0, le=10)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://api.openai.com/v1")
        return value


class SimulatorSettings(BaseModel):
    """The local OpenAI-compatible model simulator (a development and load-test tool)."""

    host: str = "127.0.0.1"
    port: Port = 0
    latency_preset: Literal["zero", "fast", "original"] = "fast"


class DbSettings(BaseModel):
    """PostgreSQL server DSN; each domain uses database ``<database_prefix><domain>`` on it."""

    url: str | None = None
    database_prefix: str = Field(default="eco2_", pattern=r"^[a-z_][a-z0-9_]*$")
    pool_min: int = Field(default=1, ge=0)
    pool_max: int = Field(default=10, ge=1)
    isolate_domains: bool = True
    """Each domain connects as its own role (named like its database), which may connect only to
    its own database; migrations create the role and make it own the domain's tables."""

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgres://", "postgresql://")):
            raise ValueError(
                "must be a postgresql:// DSN such as postgresql://user@host:5432/postgres"
            )
        return value


class CacheSettings(BaseModel):
    """Valkey/Redis URL (read models, job progress and its SSE fan-out, the token blacklist)."""

    url: str | None = None

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL such as redis://127.0.0.1:6379/0")
        return value

    def require(self, who: str) -> str:
        """The URL, for a component that cannot work without Valkey (``who`` names it)."""
        if self.url is None:
            raise ValueError(
                f"{who} needs Valkey: set ECO2_CACHE__URL, or start the stack with `eco2 up`"
            )
        return self.url


class KafkaSettings(BaseModel):
    """Kafka bootstrap servers (``host:port[,host:port]``)."""

    bootstrap: str | None = None
    # The embedded broker joins a consumer group in a few seconds with these; real Kafka keeps
    # its own broker-side defaults for the rebalance delay.
    session_timeout_ms: int = Field(default=6000, ge=1000)
    heartbeat_interval_ms: int = Field(default=1000, ge=100)
    topic_partitions: int = Field(default=6, ge=1, le=1000)
    """Partitions of the topics we create (``outbox.event.<aggregate>``; the key, the aggregate
    id, keeps each aggregate's order). The launcher sets 1 for its embedded broker, whose
    per-partition fetch cost grows with the data it holds; one consumer per group needs no more."""
    fetch_wait_max_ms: int = Field(default=50, ge=1, le=5000)
    """How long the broker may hold a consumer's fetch when it has nothing new: a saga hop's
    worst extra latency at light load (librdkafka's default, 500 ms, is tuned for throughput)."""
    replay_window_s: float = Field(default=0.0, ge=0.0, le=3600.0)
    """How long the relay keeps an acknowledged event replayable from its replication slot. The
    slot is confirmed only for what Kafka acknowledged at least this long ago, so when the relay
    starts against a broker that lost its log (the embedded, memory-only one restarted) it sends
    the last window again and consumers that were less than this far behind lose nothing (their
    inboxes drop the copies they already have). 0 (confirm on acknowledgement) for a durable
    Kafka; the launcher sets it for its embedded broker."""

    @field_validator("bootstrap")
    @classmethod
    def _host_ports(cls, value: str | None) -> str | None:
        if value is None:
            return value
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError("must be host:port[,host:port], e.g. 127.0.0.1:19092")
        return value


class RaySettings(BaseModel):
    """Ray cluster address; unset means the local head started by ``eco2 up``."""

    address: str | None = None
    num_cpus: int = Field(default=2, ge=1)
    dashboard_url: str | None = None
    """The cluster's dashboard (Serve's REST API, where the applications are deployed); unset
    means the local head's."""
    gcs_redis_address: str | None = None
    """``host:port`` of a Redis that keeps the local head's GCS state (GCS fault tolerance; the
    RayService's ``gcsFaultToleranceOptions``); unset: the head keeps it in memory."""
    ai_workers: int = Field(default=0, ge=0, le=8)
    """Local AI worker nodes started beside the head (``eco2 up --ai-workers N``); with none,
    the head itself offers the ``ai_worker`` capacity."""
    ai_worker_slots: int = Field(default=8, ge=1)
    """Units of the ``ai_worker`` resource one AI node offers. Each AI stage replica takes one
    (serve/stages.py), so this is how many stage replicas fit on a node."""


class SupervisorSettings(BaseModel):
    """How ``eco2 up``'s supervisor heals the local stack (cluster/healing.py)."""

    health_every_s: float = Field(default=5.0, gt=0)
    """How often every running component's health check is asked while the stack is up."""
    unhealthy_after: int = Field(default=3, ge=1)
    """Consecutive failed health checks (while everything it needs is healthy) after which a
    component that still runs counts as hung and is restarted."""
    busy_unhealthy_after: int = Field(default=12, ge=1)
    """The same for a component that kept using the CPU between its failed checks: busy (its
    checks answer late under load), restarted only when this goes on (a spinning loop)."""
    backoff_s: float = Field(default=1.0, gt=0)
    """Wait before a component's first restart; doubled for each further one in the window."""
    backoff_max_s: float = Field(default=30.0, gt=0)
    restart_limit: int = Field(default=5, ge=0)
    """Restarts of one component within ``restart_window_s`` before it is left failed."""
    restart_window_s: float = Field(default=600.0, gt=0)


class ExporterKind(StrEnum):
    NONE = "none"
    CONSOLE = "console"
    OTLP = "otlp"
    PROMETHEUS = "prometheus"
    """Metrics only: a ``/metrics`` endpoint on ``metrics_port``."""


class TelemetrySettings(BaseModel):
    traces: ExporterKind = ExporterKind.NONE
    metrics: ExporterKind = ExporterKind.NONE
    otlp_endpoint: str | None = None
    """Where ``traces``/``metrics`` = ``otlp`` send (OTLP over HTTP). Set by the user, it
    replaces the local trace backend: spans go to that collector instead."""
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """With ``metrics = prometheus``: this process serves ``/metrics`` on 127.0.0.1 here."""
    sample_ratio: float = Field(default=1.0, ge=0, le=1)
    """Share of new traces recorded (parent-based: a call inside a trace follows its parent)."""
    backend: Literal["phoenix", "none"] = "phoenix"
    """The trace backend ``eco2 up`` starts (Arize Phoenix: OTLP in, a web UI, the REST API
    ``eco2 trace`` reads); ``none`` starts none and exports nothing unless ``traces`` says so."""
    backend_url: str | None = None
    """A trace backend already running (Phoenix's base URL): then ``eco2 up`` starts none and
    every process exports to it."""
    project: str = "eco2"
    """The backend's project the spans are filed under."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"


class AdmissionSettings(BaseModel):
    """One process's in-flight limit (``pipelines.jobs.admission.LatencyLimit``)."""

    enabled: bool = True
    """Learn the limit from the jobs' latency; ``False``: ``max_inflight`` only."""
    max_inflight: int = Field(default=4000, ge=1)
    """The ceiling, learnt or not: past it a submit gets 503 with ``Retry-After``."""
    initial_limit: int | None = Field(default=256, ge=1)
    """Where the learnt limit starts (``None``: at ``max_inflight``, refusing nothing before
    the jobs' latency shows an overload, which lets a sudden overload's first seconds in)."""
    min_limit: int = Field(default=16, ge=1)
    """The limit never shrinks below this: a slow model at low load refuses no one."""
    tolerance: float = Field(default=2.0, gt=1)
    """Jobs may take this many times the baseline (their time at low load) before the limit
    shrinks: the queueing a saturated stack is allowed. Lower keeps an overload's latency
    closer to the baseline but also refuses users of a closed loop at capacity, who gain
    nothing from it (docs/reliability.md, "Overload", has both measured)."""
    slow_start_rate: float | None = Field(default=25.0, gt=0)
    """Jobs per second one process is taken to carry until latency says otherwise: in slow
    start the limit is at least this × the baseline job time (Little's law), so slow model
    calls are not held to a count sized for fast ones. The default is about what one of the
    two scan ingress replicas completes at capacity on a 2-core machine (docs/benchmarks.md);
    ``None``: the limit starts from ``initial_limit`` alone."""
    growth: float = Field(default=0.1, gt=0)
    """The share the limit grows by per job time while it is what holds the load back (after
    its first cut; before, it doubles)."""
    window_s: float = Field(default=1.0, gt=0)
    min_samples: int = Field(default=5, ge=1)
    """Jobs that must end in a window before it counts."""
    baseline_horizon_s: float = Field(default=120.0, gt=0)
    """A lasting rise of the jobs' latency becomes the new baseline over about this long (ten
    times as long while the limit holds load back: then it is mostly queueing)."""
    max_retry_after_s: float = Field(default=10.0, ge=1)


class ImageFetchSettings(BaseModel):
    """How the vision stage fetches an ``image_url`` that is not on our CDN, through the guard
    of :mod:`eco2.safe_fetch` (every hop and every resolved address checked)."""

    max_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """A larger image is refused (``image_too_large``) without reading the rest."""
    max_redirects: int = Field(default=3, ge=0, le=10)
    connect_timeout_s: float = Field(default=3.0, gt=0)
    total_timeout_s: float = Field(default=10.0, gt=0)


class ScanSettings(BaseModel):
    """The scan pipeline's limits and policies."""

    allowed_image_hosts: tuple[str, ...] = ("cdn.eco2.local",)
    """Hosts accepted as ``image_url`` without a DNS look-up (the image domain's CDN)."""
    max_user_input_chars: int = Field(default=500, ge=1)
    admission: AdmissionSettings = AdmissionSettings()
    """Each scan ingress replica's in-flight limit, learnt from its jobs' latency."""
    image_fetch: ImageFetchSettings = ImageFetchSettings()
    reward_enabled: bool = True
    lease_s: float = Field(default=15.0, gt=1)
    """A job whose runner stopped renewing for this long is resumed by another replica."""
    reconcile_every_s: float = Field(default=5.0, gt=0)


class ChatSettings(BaseModel):
    """The chat pipeline's limits, models, context window and tools."""

    models: dict[str, str] = Field(
        default_factory=lambda: {"gpt-5.2": "gpt-5.2", "gemini-3-flash-preview": "gpt-4o-mini"}
    )
    """The web client's model names → the model the endpoint is asked for (one ``openai`` SDK
    path, so every name maps to an OpenAI-compatible model). Any other name is a 422."""
    default_model: str = "gpt-5.2"
    max_message_chars: int = Field(default=1000, ge=1)
    max_title_chars: int = Field(default=60, ge=1)
    intent_cache_s: int = Field(default=3600, ge=0)
    """Intent classifications are cached this long by normalised message hash (0: off)."""
    recent_turns: int = Field(default=6, ge=0)
    """Messages of the conversation passed to the answer as they are."""
    summary_threshold_tokens: int = Field(default=1200, ge=100)
    """Past this estimate (characters / 3) of the older turns, they are summarised once and
    the summary is stored and used instead."""
    token_flush_ms: float = Field(default=50.0, ge=0)
    """The answer's deltas after the first are passed on in chunks at most this often, each
    holding what arrived since the last (0: every delta on its own). Each chunk is a streamed
    object, a stream entry and an SSE event, so fewer chunks cost less CPU; the first delta is
    never held."""
    input_timeout_s: float = Field(default=30.0, gt=0)
    """How long a job waits for the user's reply to ``needs_input`` (then answers without)."""
    answer_attempts: int = Field(default=3, ge=1, le=10)
    """How often the streamed answer is opened when it fails before its first token (a refused,
    broken or silent stream: nothing of it reached the user). After the first token a failure
    ends the job, with what was streamed kept."""
    admission: AdmissionSettings = AdmissionSettings(enabled=False, max_inflight=2000)
    """A fixed ceiling: a chat job's time depends on its intent, its tools and how long the
    user takes to answer ``needs_input``, so its latency says little about load."""
    tools: Literal["fake", "real"] = "fake"
    """``fake``: offline adapters with canned data (development and tests); ``real``: the HTTP
    adapters below, each under its intent's budget."""
    weather_url: str | None = None
    bulk_waste_url: str | None = None
    collection_point_url: str | None = None
    web_search_url: str | None = None
    image_generation_url: str | None = None
    fake_latency_ms: dict[str, float] = Field(
        default_factory=lambda: {
            "character": 20.0,
            "location": 60.0,
            "collection_point": 50.0,
            "weather": 40.0,
            "bulk_waste": 50.0,
            "web_search": 80.0,
            "image_generation": 100.0,
        }
    )
    """How long each offline fake takes, as its upstream would (0 answers at once)."""
    image_generation: bool = False
    """Image generation is off unless switched on (it is slow and costly)."""
    api_key: SecretStr = SecretStr("")
    """Key for the external tool APIs (sent as a bearer token)."""


class ApiSettings(BaseModel):
    """The public HTTP entry point (the gateway locally)."""

    host: str = "127.0.0.1"
    port: Port = 0
    url: str | None = None
    """Where the gateway answers (set by the launcher)."""
    authz_decision_cache_s: float = Field(default=5.0, ge=0, le=60)
    """How long the gateway trusts ext-authz's *allow* for one token before asking again: also
    how long a logged-out token may still pass (``0``: ask on every request, as Envoy does in
    Kubernetes). See :mod:`runtime.signin`."""
    shed_k: float = Field(default=1.1, ge=0)
    """The gateway passes at most this many times what a job-starting route accepted lately
    and refuses the rest itself at once (:mod:`runtime.throttle`); ``0``: passes everything."""
    shed_horizon_s: float = Field(default=2.0, gt=0)
    """How far back (decaying) the gateway's counts of requests and accepts reach; after this
    long without a refusal from the service it passes everything again."""
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """The largest request body the gateway passes on (413 past it), but for the signed image
    upload (``image.max_bytes``): every JSON command is far smaller, and a service parses what
    it is sent whole (a 60 MB JSON body cost a service a second of CPU). Envoy's buffer filter
    holds the same limit in Kubernetes."""


class ServicesSettings(BaseModel):
    """Where each service answers: set by the launcher locally, Service DNS names in Kubernetes.

    ``pool_max`` sizes each domain's own database pool, so a slow domain cannot starve another.
    """

    serve_url: str | None = None
    """Ray Serve's HTTP entry (the scan ingress app)."""
    auth_url: str | None = None
    authz_url: str | None = None
    character_url: str | None = None
    chat_url: str | None = None
    """The chat domain's service (conversations); posting a message goes to Ray Serve."""
    my_url: str | None = None
    notification_url: str | None = None
    location_url: str | None = None
    image_url: str | None = None
    readmodels_url: str | None = None
    """The read side's query API (projections in Valkey)."""
    streams_url: str | None = None
    """The pipelines' read side: job streams (SSE) and results, outside Ray Serve."""
    pool_max: dict[str, int] = Field(
        default_factory=lambda: {
            "auth": 8,
            "character": 8,
            "chat": 8,
            "my": 8,
            "notification": 4,
            "location": 4,
            "image": 4,
        }
    )
    call_timeout_s: float = Field(default=5.0, gt=0)
    """Deadline of one service-to-service HTTP call."""
    reaction_timeout_s: float = Field(default=10.0, gt=0)
    """Deadline of one event reaction (a saga step); past it the step is retried."""

    def url_of(self, service: str) -> str:
        url = getattr(self, f"{service}_url", None)
        if not url:
            raise ValueError(
                f"the {service} service URL is not configured: run `eco2 up` or set "
                f"ECO2_SERVICES__{service.upper()}_URL"
            )
        return str(url)


class AuthSettings(BaseModel):
    """Tokens, cookies and sign-in providers of the auth domain (checked by ext-authz)."""

    issuer: str = "eco2-auth"
    audience: str = "eco2-api"
    access_ttl_s: int = Field(default=900, ge=30)
    refresh_ttl_s: int = Field(default=14 * 24 * 3600, ge=60)
    access_cookie: str = "s_access"
    refresh_cookie: str = "s_refresh"
    cookie_secure: bool = False
    cookie_samesite: Literal["lax", "strict", "none"] = "lax"
    cookie_domain: str | None = None
    dev_login: bool = True
    """``POST /api/v1/auth/dev-login``; always refused when ``environment`` is production."""
    oauth_mode: Literal["fake", "real"] = "fake"
    """``fake``: an offline stand-in provider answers the OAuth flow (development and tests)."""
    oauth_client_ids: dict[str, str] = Field(default_factory=dict)
    oauth_client_secrets: dict[str, SecretStr] = Field(default_factory=dict)
    frontend_url: str = "/"
    """Where the OAuth callback sends the browser after signing in."""
    jwks_cache_s: float = Field(default=300.0, gt=0)


class ImageSettings(BaseModel):
    """Uploads: presigned URLs to the image service, stored locally or in S3."""

    backend: Literal["local", "s3"] = "local"
    storage_dir: Path | None = None
    """Local object storage; default ``<run_dir>/objects``."""
    cdn_base_url: str = "https://cdn.eco2.local"
    """Base of the ``cdn_url`` handed to clients; its host must be in
    ``ECO2_SCAN__ALLOWED_IMAGE_HOSTS``."""
    signing_key: SecretStr = SecretStr("dev-only-image-signing-key")
    url_ttl_s: int = Field(default=900, ge=10, le=7 * 24 * 3600)
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    content_types: tuple[str, ...] = ("image/jpeg", "image/png", "image/webp", "image/gif")
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "ap-northeast-2"


class RateRule(BaseModel):
    """``limit`` requests per ``period_s`` sustained, ``burst`` of them back to back; a
    ``limit`` of 0 switches the rule off. ``0`` alone (``ECO2_RATE_LIMIT__SCAN=0``) is read as
    ``{"limit": 0}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    limit: int = Field(ge=0)
    period_s: float = Field(default=60.0, gt=0)
    burst: int = Field(default=1, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _zero_is_off(cls, value: Any) -> Any:
        if value == 0 and not isinstance(value, bool):
            return {"limit": 0}
        return value

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    @property
    def interval_us(self) -> int:
        """``T``: the sustained gap between two requests, in whole microseconds (at least 1)."""
        return max(1, round(self.period_s * 1_000_000 / self.limit))

    def describe(self) -> str:
        if not self.enabled:
            return "off"
        return f"{self.limit} per {self.period_s:g} s, bursts of {self.burst}"


class RateLimitSettings(BaseModel):
    """Per-user limits on submits, kept in Valkey and shared by every replica
    (:mod:`eco2.ratelimit`); a caller over one gets 429 with ``Retry-After``. Set a rule as JSON
    (``ECO2_RATE_LIMIT__SCAN='{"limit": 30, "period_s": 60, "burst": 10}'``; a field left out
    takes :class:`RateRule`'s default, not this section's) or switch it off with ``0``
    (``ECO2_RATE_LIMIT__SCAN=0``); load tests start the stack with the rules off.

    The defaults stop scripts, not people: taking a photo, uploading it and reading the answer
    takes a person several seconds, so a phone user stays under 20 scans or chat messages a
    minute, and a burst of 10 lets someone sort a bag of items quickly. Every scan and every
    chat message with a photo first asks for an upload URL, so ``upload`` allows twice that."""

    scan: RateRule = RateRule(limit=20, period_s=60, burst=10)
    """``POST /api/v1/scan`` and the synchronous ``POST /v1/scan:classify``, per user."""
    chat: RateRule = RateRule(limit=20, period_s=60, burst=10)
    """Posting a chat message, per user."""
    upload: RateRule = RateRule(limit=40, period_s=60, burst=20)
    """Asking for an image upload URL (``POST /api/v1/images/{channel}``), per user."""
    timeout_s: float = Field(default=0.25, gt=0, le=5)
    """How long a submit waits for the limiter; past it (or with Valkey down) the submit is let
    through unlimited, logged and counted (``eco2.rate_limit.checks{outcome=unavailable}``)."""


class LocationSettings(BaseModel):
    """The location domain's generated dataset (see domains/location)."""

    dataset_seed: int = 2025
    dataset_size: int = Field(default=3000, ge=10, le=200_000)


class Settings(BaseSettings):
    """Everything a process of the stack may be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="ECO2_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
    )

    environment: Literal["development", "test", "production"] = "development"
    run_dir: Path = Path(".eco2")
    model: ModelSettings = ModelSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    db: DbSettings = DbSettings()
    cache: CacheSettings = CacheSettings()
    kafka: KafkaSettings = KafkaSettings()
    ray: RaySettings = RaySettings()
    supervisor: SupervisorSettings = SupervisorSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    api: ApiSettings = ApiSettings()
    services: ServicesSettings = ServicesSettings()
    scan: ScanSettings = ScanSettings()
    chat: ChatSettings = ChatSettings()
    auth: AuthSettings = AuthSettings()
    image: ImageSettings = ImageSettings()
    location: LocationSettings = LocationSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()

    @model_validator(mode="after")
    def _safe_in_production(self) -> Settings:
        if self.environment != "production":
            return self
        problems = []
        if (
            self.image.signing_key.get_secret_value()
            == ImageSettings().signing_key.get_secret_value()
        ):
            problems.append("ECO2_IMAGE__SIGNING_KEY: set a secret of your own")
        if not self.auth.cookie_secure:
            problems.append("ECO2_AUTH__COOKIE_SECURE: must be true in production")
        if self.auth.oauth_mode == "fake":
            problems.append("ECO2_AUTH__OAUTH_MODE: the fake provider is for development only")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def database_name(self, domain: str) -> str:
        if domain not in DOMAIN_DATABASES:
            raise ValueError(f"unknown domain database {domain!r}; known: {DOMAIN_DATABASES}")
        return f"{self.db.database_prefix}{domain}"


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment, raising :class:`SettingsError` naming bad fields."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"ECO2_{'__'.join(str(part) for part in err['loc']).upper()}: {err['msg']}"
            if err["loc"]
            else str(err["msg"]).removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from exc


def settings_of(environ: Mapping[str, str]) -> Settings:
    """The settings a process started with ``environ`` reads (another process's environment,
    e.g. the stack supervisor's that every child inherits), parsed as :class:`Settings` parses
    its own (``ECO2_`` prefix, ``__`` nesting, JSON values)."""

    class _Theirs(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            source = EnvSettingsSource(settings_cls)
            source.env_vars = {name.lower(): value for name, value in environ.items()}
            return (source,)

    return _Theirs()
