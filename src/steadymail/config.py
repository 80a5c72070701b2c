"""Settings: STEADYMAIL_* environment variables over one TOML file over defaults, read once."""

import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from steadymail.secretfile import private_dir


class RelaySettings(BaseModel):
    """One SMTP relay the workers deliver through."""

    model_config = ConfigDict(allow_inf_nan=False)

    host: str = "127.0.0.1"
    port: int = 2525
    username: str | None = None
    password: SecretStr | None = None
    # STARTTLS: "opportunistic" (when the server offers it), "require" (defer the mail without
    # it) or "off" (e.g. a local capture server). The old booleans still read: true is
    # "require", false is "opportunistic" (they were the default, not a choice of plaintext).
    starttls: Literal["opportunistic", "require", "off"] = "opportunistic"
    use_tls: bool = False
    validate_certs: bool = True
    # Messages per second across every worker of the region; 0 means unlimited.
    rate_per_second: int = 0
    # AUTH only ever goes over TLS unless this says a plaintext link is acceptable.
    allow_plaintext_auth: bool = False
    # A warm-up schedule for a new relay or IP: at most warmup[d] messages on day d (UTC)
    # counted from warmup_start, across the region; no cap once the schedule ends. When every
    # relay's cap is spent, messages are held (not attempted, not aged) until the next day.
    warmup: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list, max_length=366)
    warmup_start: date | None = None

    @model_validator(mode="after")
    def _warmup_has_a_start(self) -> "RelaySettings":
        if self.warmup and self.warmup_start is None:
            raise ValueError("a warm-up schedule needs warmup_start (YYYY-MM-DD)")
        return self

    def warmup_cap(self, now: float) -> int:
        """Today's cap (0: none) under the warm-up schedule."""
        if not self.warmup or self.warmup_start is None:
            return 0
        start = datetime.combine(self.warmup_start, datetime.min.time(), UTC).timestamp()
        day = max(0, int((now - start) // 86400))
        return self.warmup[day] if day < len(self.warmup) else 0

    @field_validator("starttls", mode="before")
    @classmethod
    def _starttls_from_bool(cls, value: object) -> object:
        if isinstance(value, bool):
            return "require" if value else "opportunistic"
        return value

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


class DkimSettings(BaseModel):
    """A DKIM signing key for one domain."""

    model_config = ConfigDict(allow_inf_nan=False)

    domain: str
    selector: str
    key_file: Path
    algorithm: Literal["rsa-sha256", "ed25519-sha256"] = "rsa-sha256"


class NotifierSettings(BaseModel):
    """Where alerts go: the log, a JSON webhook, a Slack-compatible webhook, or email."""

    model_config = ConfigDict(allow_inf_nan=False)

    name: str = "log"
    kind: Literal["log", "webhook", "slack", "email"] = "log"
    url: str = ""
    to: list[str] = Field(default_factory=list)
    timeout: float = 5.0


class RegionRef(BaseModel):
    """A region as the control plane knows it: only by its HTTP API."""

    model_config = ConfigDict(allow_inf_nan=False)

    name: str
    url: str
    api_key: SecretStr


class Settings(BaseSettings):
    """Everything configurable; build once at the edge and pass down."""

    model_config = SettingsConfigDict(
        env_prefix="STEADYMAIL_", env_nested_delimiter="__", extra="ignore", allow_inf_nan=False
    )

    region: str = "R1"
    data_dir: Path = Path(".steadymail")
    database_url: str = ""
    capture_db: Path | None = None

    relays: list[RelaySettings] = Field(default_factory=lambda: [RelaySettings()])
    smtp_timeout: float = 30.0
    relay_cooldown: float = 10.0
    sink_host: str = "127.0.0.1"
    sink_port: int = 2525

    api_host: str = "127.0.0.1"
    api_port: int = 8025
    # Where tracking and unsubscribe links point (the public listener, as the internet sees it).
    # Empty: http://<public_host>:<public_port>.
    public_url: str = ""

    batch_size: int = 100
    lease_ttl: float = 10.0
    # PostgreSQL session bounds; 0 derives them from lease_ttl (see resolved_pg_timeouts).
    pg_idle_in_transaction_timeout: float = 0.0
    pg_lock_timeout: float = 0.0
    worker_concurrency: int = 4
    inflight_window: int = 8
    checkpoint_interval: float = 0.002
    poll_interval: float = 0.2
    heartbeat_interval: float = 0.0

    defer_base: float = 60.0
    defer_max: float = 3600.0
    defer_max_age: float = 3 * 24 * 3600.0
    defer_jitter: float = 0.2
    connection_retries: int = 2

    default_from: str = "steadymail <noreply@steadymail.local>"
    message_id_domain: str = "steadymail.local"
    dkim: list[DkimSettings] = Field(default_factory=list)

    # Sending domains (`steadymail domain`): the resolver the DNS check asks ("host" or
    # "host:port"; empty: the system's), the SPF mechanisms that cover this platform's sending
    # hosts, the host bounces reach when the return path is a domain of its own (its MX), and
    # how long a replaced DKIM key stays published after it stopped signing.
    dns_resolver: str = ""
    spf_mechanisms: str = Field(default="a mx", max_length=400)
    bounce_mx: str = Field(default="", max_length=253)
    dkim_retire_after: float = Field(default=7 * 24 * 3600.0, ge=0)
    # Sends refuse a From domain that is not a verified sending domain; true allows any (for
    # development). Unset: allowed only while every relay is the built-in capture server
    # (sink_host:sink_port, the embedded defaults), where nothing leaves the machine.
    allow_unverified_domains: bool | None = None

    workers: int = 2

    # Link and open tracking. "off" disables rewriting; unsubscribe links are always added.
    tracking_version: Literal["off", "v1", "v2"] = "v1"
    # The open pixel (an <img> at the end of the HTML part). Off: opens are not counted, links
    # are still tracked; short messages then escape content filters' image-to-text rules.
    open_tracking: bool = True
    # Key id -> secret. Empty: a key is generated into data_dir on first use (development).
    tracking_keys: dict[str, SecretStr] = Field(default_factory=dict)
    tracking_signing_key: str = ""
    # Key ids whose links must stop working (they answer 404); remove their secret too.
    tracking_retired_keys: list[str] = Field(default_factory=list)
    ip_hash_secret: SecretStr | None = None
    # A click this soon after delivery is a link scanner's, not a person's.
    scanner_click_window: float = 5.0
    tracking_flush_interval: float = 0.2

    # The place this process fills (`worker-1`); a new instance in a slot is a restart. Empty:
    # from systemd's unit, the pod or container name, or the host (see identity.py).
    slot: str = ""
    # How often every process checks that its peers on the same host still run (seconds).
    peer_check_interval: float = 1.0
    # Workers and the monitor serve /livez and /readyz on this port (0: off), for probes.
    health_port: int = 0
    # Loopback by default; a pod sets 0.0.0.0 so that the kubelet can reach the probes.
    health_host: str = "127.0.0.1"
    # Changes (flags, deploys) made this long before an alert are named on it as suspects.
    suspect_window: float = 3600.0
    # A message whose holders died this many times with it in flight is quarantined.
    quarantine_after: int = 3
    # Fault injection for tests and drills: a worker SIGKILLs itself on this recipient.
    fault_crash_on: str = ""
    # The freeze drill: a worker stops itself where an order file in this directory says.
    fault_freeze_dir: Path | None = None
    # SQLite: a peer stopped (SIGSTOP) inside a write transaction this long is killed, since
    # every writer of the region waits on it. 0 derives lease_ttl / 2; below 0, never.
    sqlite_frozen_writer_grace: float = 0.0

    # Bounces: every message's envelope sender is its VERP return path
    # (bounces+<id>-<mac>@<bounce_domain>; empty: the From address's domain), so a bounce or
    # a complaint names the message. `steadymail inbound` receives them (and List-Unsubscribe
    # mailto requests) on inbound_host:inbound_port.
    verp: bool = True
    bounce_domain: str = Field(default="", max_length=253)
    inbound_host: str = "127.0.0.1"
    inbound_port: int = Field(default=2526, ge=0, le=65535)
    # The local part feedback loops (complaints, ARF) are sent to, at any domain.
    complaints_local_part: str = Field(default="fbl", min_length=1, max_length=64)
    # Soft bounces (a mailbox full, a server down) of one address within the window past which
    # it is suppressed as good as gone.
    soft_bounce_limit: int = Field(default=3, ge=1)
    soft_bounce_window: float = Field(default=30 * 86400.0, gt=0)

    # Messages per second to a destination domain across the region (e.g. {"gmail.com": 50}):
    # a worker waits for the domain's next grant before it hands the message to SMTP.
    domain_rate_limits: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    # Event webhooks (`steadymail webhooks`): events per request, requests in flight (one per
    # webhook), the request timeout, retries doubling from base to max for retry_for, a webhook
    # disabled after failing for disable_after (an alert from webhook_alert_after on).
    webhook_poll: float = Field(default=0.2, gt=0)
    webhook_batch_size: int = Field(default=100, ge=1, le=1000)
    webhook_concurrency: int = Field(default=16, ge=1, le=1000)
    webhook_timeout: float = Field(default=10.0, gt=0)
    webhook_retry_base: float = Field(default=5.0, gt=0)
    webhook_retry_max: float = Field(default=600.0, gt=0)
    webhook_retry_for: float = Field(default=3 * 86400.0, gt=0)
    webhook_disable_after: float = Field(default=6 * 3600.0, gt=0)
    webhook_alert_after: float = Field(default=600.0, gt=0)
    # Allow webhook URLs on loopback or private addresses (development, tests, an internal hub).
    webhook_allow_private: bool = False

    monitor_interval: float = 1.0
    # The message log keeps each message's events this many days (0: for ever); the monitor
    # prunes older ones every `message_log_prune_every` seconds.
    message_log_days: float = Field(default=30.0, ge=0)
    message_log_prune_every: float = Field(default=600.0, gt=0)
    # A process is dead after this many heartbeat intervals without one.
    dead_after_beats: float = 3.0
    crash_loop_restarts: int = 3
    crash_loop_window: float = 300.0
    # A restart alert resolves once the new instance has been healthy this long.
    restart_resolve_after: float = 20.0
    # A running send with due work stalls after max(floor, factor x its usual progress gap).
    stall_floor: float = 30.0
    stall_factor: float = 10.0
    notifiers: list[NotifierSettings] = Field(default_factory=lambda: [NotifierSettings()])

    # The control plane (`steadymail control`): the regions it steers, its port and database,
    # the risk policy. The CLI's `rollout` commands talk to `control_url`.
    control_regions: list[RegionRef] = Field(default_factory=list)
    control_host: str = "127.0.0.1"
    control_port: int = 8030
    control_url: str = "http://127.0.0.1:8030"
    control_db: Path | None = None
    control_api_key: SecretStr | None = None
    control_interval: float = 0.5
    policy_file: Path = Path("policy.toml")

    # APM: the monitor keeps the region's metrics as time series at this resolution (seconds),
    # with 1-minute rollups; points older than the retention are dropped.
    metrics_interval: float = 5.0
    metrics_retention: float = 24 * 3600.0
    metrics_rollup_retention: float = 30 * 24 * 3600.0
    # prometheus-client's multiprocess directory; empty: <data_dir>/prometheus.
    prometheus_dir: Path | None = None
    anomaly_detector: str = "steadymail-ops"
    # A series scoring at or above this raises an anomaly alert (the production threshold).
    anomaly_threshold: float = 0.6
    # ... and only when the value is this many standard deviations from the series' usual level.
    anomaly_min_sigma: float = 5.0
    # Points a detector learns from before it may score (the range of the series is fixed then).
    anomaly_warmup: int = 150
    # Points after an anomaly during which that series stays quiet (the refractory period).
    anomaly_rest: int = 200
    # An anomaly alert resolves after this many intervals without a new high score.
    anomaly_resolve_after: int = 12
    notify_retry_base: float = 2.0
    notify_max_attempts: int = 8
    # public routes, relays, suppression (issue 11)
    # Tracking events held in memory between writes; past it a new one is dropped and counted.
    tracking_buffer_max: int = Field(default=100_000, ge=1)
    # Seconds a click or open link keeps working after the message is built; 0: for ever.
    tracking_click_ttl: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    tracking_open_ttl: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    # RFC 8058 wants unsubscribe links to work as long as the mail can be read: keep it 0.
    tracking_unsubscribe_ttl: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    # The largest mail `steadymail inbound` takes (a bounce quotes the original), in bytes;
    # larger is refused with 552 before it is buffered whole.
    inbound_max_message_size: int = Field(default=1024 * 1024, ge=1024)

    # listeners and secrets (issue 11)
    # The public listener (tracking /t/…, unsubscribe /u/…) is the one to expose to the
    # internet (behind TLS); the admin API stays on api_host:api_port, loopback by default.
    public_host: str = "127.0.0.1"
    public_port: int = 8040
    # Which listeners `steadymail api` runs: both in one process (default), or only one.
    api_listeners: Literal["both", "admin", "public"] = "both"

    # request limits (issue 11): past them the API answers 413 (bodies) or 422 (counts).
    # Bytes of any request body except a CSV import.
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Bytes of a CSV body to `POST /v1/lists/{name}/import`, read as a stream.
    max_import_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    # Recipients of one `POST /v1/messages`.
    max_recipients: int = Field(default=1000, ge=1)

    @model_validator(mode="after")
    def _default_public_url(self) -> "Settings":
        if not self.public_url:
            self.public_url = self.link_base(self.public_host, self.public_port)
        return self

    @staticmethod
    def link_base(host: str, port: int) -> str:
        """The URL of a listener bound to host:port, as links on this machine would name it."""
        if host in ("", "0.0.0.0", "::"):  # a wildcard bind is no address to link to
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("STEADYMAIL_CONFIG", "steadymail.toml")
        toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_file)
        return (init_settings, env_settings, toml)

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'steadymail.db'}"

    def unverified_domains_allowed(self) -> bool:
        if self.allow_unverified_domains is not None:
            return self.allow_unverified_domains
        return all((r.host, r.port) == (self.sink_host, self.sink_port) for r in self.relays)

    def resolved_capture_db(self) -> Path:
        return self.capture_db or self.data_dir / "capture.db"

    def resolved_control_db(self) -> Path:
        return self.control_db or self.data_dir / "control.db"

    def resolved_prometheus_dir(self) -> Path:
        return self.prometheus_dir or self.data_dir / "prometheus"

    def resolved_heartbeat_interval(self) -> float:
        return self.heartbeat_interval or self.lease_ttl / 3

    def dead_age(self) -> float:
        """The dead-age rule: a process silent this long (``dead_after_beats`` heartbeat
        intervals) counts as dead; ``store.instances.alive`` applies it in SQL."""
        return self.resolved_heartbeat_interval() * self.dead_after_beats

    def resolved_frozen_writer_grace(self) -> float:
        g = self.sqlite_frozen_writer_grace
        return self.lease_ttl / 2 if g == 0 else max(g, 0.0)

    def resolved_pg_timeouts(self) -> dict[str, float]:
        """make_engine's keyword arguments: a frozen session is ended well within one lease
        (half of it), and a lock wait gives up before the waiter's own lease is at risk."""
        return {
            "idle_in_transaction_timeout": self.pg_idle_in_transaction_timeout
            or self.lease_ttl / 2,
            "lock_timeout": self.pg_lock_timeout or min(2.0, self.lease_ttl / 5),
        }


def load_settings(**overrides: Any) -> Settings:
    """Read settings once; callers pass the result down instead of re-reading. ``overrides``
    are checked by pydantic like every other source of settings."""
    settings = Settings(**overrides)
    # Keys and the SQLite database live here: only the owner may enter.
    private_dir(settings.data_dir)
    return settings
