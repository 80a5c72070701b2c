"""Tables (SQLAlchemy Core). Times are float seconds since the epoch, the clock's unit."""

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)

metadata = MetaData()

# The tracking events a message records at most once (per machine flag).
TRACKED_ONCE = "kind IN ('open', 'unsubscribe')"

# SQLite only auto-increments INTEGER PRIMARY KEY, PostgreSQL wants BIGINT for big tables.
Id = BigInteger().with_variant(Integer(), "sqlite")

lists = Table(
    "lists",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("list_id", Id, ForeignKey("lists.id"), nullable=False),
    Column("email", String(320), nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("status", String(20), nullable=False, server_default="active"),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("list_id", "email", name="uq_contacts_list_email"),
    # A suppression marks every contact with that address, on any list.
    Index("ix_contacts_email_lower", func.lower(text("email"))),
)

# Keyed by the bare, case-folded address (domain/suppression.py) and the stream it stops:
# `marketing`, `transactional` or `all`.
suppressions = Table(
    "suppressions",
    metadata,
    Column("email", String(320), nullable=False),
    Column("stream", String(20), nullable=False),
    Column("reason", String(40), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    # The message whose bounce, complaint or unsubscribe it came from (none: added by hand).
    Column("message_id", Id, nullable=True),
    PrimaryKeyConstraint("email", "stream", name="pk_suppressions"),
)

# Every suppression added or removed by a person (API, CLI, import), with who and why: a
# removal is the one change that can make mail go to someone who asked it to stop.
suppression_log = Table(
    "suppression_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("email", String(320), nullable=False),
    Column("stream", String(20), nullable=False),
    Column("action", String(20), nullable=False),  # added | removed
    Column("reason", String(40), nullable=False),
    Column("by", String(200), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Index("ix_suppression_log_email", "email", "at"),
)

templates = Table(
    "templates",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("subject", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("variables", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)

sends = Table(
    "sends",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("state", String(20), nullable=False),
    Column("list_id", Id, ForeignKey("lists.id"), nullable=True),
    Column("template_id", Id, ForeignKey("templates.id"), nullable=True),
    Column("from_addr", String(400), nullable=False),
    Column("total", Integer, nullable=False, server_default="0"),
    Column("suppressed", Integer, nullable=False, server_default="0"),
    Column("batch_count", Integer, nullable=False, server_default="0"),
    # Messages re-sent after their previous holder died mid-window: the duplicate bound, counted.
    Column("resent_after_crash", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("completed_at", Float, nullable=True),
    Column("last_progress_at", Float, nullable=True),
    # When a `scheduled` send is to start (epoch seconds).
    Column("scheduled_at", Float, nullable=True),
    Index("ix_sends_state", "state"),
)

batches = Table(
    "batches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("send_id", Id, ForeignKey("sends.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("state", String(20), nullable=False),
    Column("available_at", Float, nullable=False),
    Column("lease_owner", String(100), nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    Column("lease_epoch", Integer, nullable=False, server_default="0"),
    Column("claims", Integer, nullable=False, server_default="0"),
    Column("reclaims", Integer, nullable=False, server_default="0"),
    # 1 while the current lease is one that took over an expired lease (its holder died).
    Column("reclaimed", Integer, nullable=False, server_default="0"),
    # When this batch's holder last recorded a result: the send's progress is the newest of
    # these (no row that every worker of a send writes).
    Column("progress_at", Float, nullable=True),
    UniqueConstraint("send_id", "seq", name="uq_batches_send_seq"),
    Index("ix_batches_pending", "state", "available_at"),
    Index("ix_batches_leased", "state", "lease_expires_at"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("send_id", Id, ForeignKey("sends.id"), nullable=False),
    Column("batch_seq", Integer, nullable=False),
    Column("contact_id", Id, nullable=True),
    Column("email", String(320), nullable=False),
    # Per-message variables and content for transactional messages; NULL for campaigns.
    Column("payload", JSON, nullable=True),
    Column("state", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("first_attempt_at", Float, nullable=True),
    Column("next_attempt_at", Float, nullable=True),
    Column("sent_at", Float, nullable=True),
    Column("smtp_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("epoch", Integer, nullable=False, server_default="0"),
    # Times a holder died while this message was in flight: a poison message crashes them all.
    Column("crashes", Integer, nullable=False, server_default="0"),
    Index("ix_messages_batch", "send_id", "batch_seq"),
    Index("ix_messages_send_state", "send_id", "state"),
    # The message log's search by recipient (`GET /v1/messages?to=`).
    Index("ix_messages_email_lower", func.lower(text("email"))),
)

# The message log: what happened to each message, in order (queued, each delivery attempt's
# outcome with its SMTP reply, a later bounce or complaint). Opens, clicks and unsubscribes are
# in `tracking_events`. Pruned after `message_log_days`.
message_events = Table(
    "message_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", Id, nullable=False),
    Column("send_id", Id, nullable=False),
    Column("at", Float, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("smtp_code", Integer, nullable=True),
    Column("detail", Text, nullable=False, server_default=""),
    Index("ix_message_events_message", "message_id", "id"),
    Index("ix_message_events_at", "at"),
)

instances = Table(
    "instances",
    metadata,
    Column("instance_id", String(100), primary_key=True),
    Column("service", String(40), nullable=False),
    Column("region", String(40), nullable=False),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(40), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("stopped_at", Float, nullable=True),
    Column("stop_reason", String(200), nullable=True),
    # The place a process fills (`worker-1`, `api`): a new instance in a slot is a restart.
    Column("slot", String(100), nullable=False, server_default=""),
    # How the process ended, when its supervisor saw it (exit code or signal).
    Column("exit_reason", String(200), nullable=True),
    # The flag values the process ran with at its last heartbeat (workers).
    Column("flags", JSON, nullable=True),
    # Which OS process it is (`boot:pidns:starttime`), so a host peer can tell that it is gone.
    Column("proc", String(120), nullable=True),
    # Where the slot came from: setting, systemd, kubernetes, container or host.
    Column("identity", String(20), nullable=True),
    # `boot:device:inode` of the slot lock file it held (identity.py): same file, same slot.
    Column("lock", String(120), nullable=True),
    # The settings it ran with, secrets masked: a difference from its predecessor is a deploy.
    Column("config", JSON, nullable=True),
    # An uncaught exception's type, message and innermost frames of our code.
    Column("last_words", Text, nullable=True),
    Index("ix_instances_service", "service", "heartbeat_at"),
    Index("ix_instances_started", "started_at"),
    Index("ix_instances_slot", "slot", "started_at"),
    Index("ix_instances_host", "host", "stopped_at"),
)

relay_windows = Table(
    "relay_windows",
    metadata,
    Column("relay", String(300), primary_key=True),
    Column("window", BigInteger, nullable=False),
    Column("used", Integer, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(20), nullable=False, unique=True),
    Column("key_hash", String(128), nullable=False),
    Column("scopes", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)

tracking_events = Table(
    "tracking_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(20), nullable=False),
    Column("send_id", Id, nullable=False),
    Column("message_id", Id, nullable=False),
    Column("link", Integer, nullable=False, server_default="0"),
    Column("url", Text, nullable=False, server_default=""),
    Column("at", Float, nullable=False),
    Column("method", String(10), nullable=False),
    Column("user_agent", String(500), nullable=False, server_default=""),
    # HMAC-SHA256 of the client address with a secret: countable, never reversible to the IP.
    Column("ip_hash", String(64), nullable=False, server_default=""),
    # 1 for mail-privacy proxies, prefetchers and link scanners; excluded from human stats.
    Column("machine", Integer, nullable=False, server_default="0"),
    Column("reason", String(100), nullable=False, server_default=""),
    Index("ix_tracking_events_send", "send_id", "kind"),
    # A message's history in the message log.
    Index("ix_tracking_events_message", "message_id"),
    # Opens and unsubscribes are recorded once a message (and machine flag): a repeat is free.
    Index(
        "uq_tracking_events_once",
        "message_id",
        "kind",
        "machine",
        unique=True,
        sqlite_where=text(TRACKED_ONCE),
        postgresql_where=text(TRACKED_ONCE),
    ),
)

# An append-only log of what processes did that the monitor must hear about (exits seen by a
# supervisor, lease reclaims, quarantines). The monitor tails it by id: no table scans.
platform_events = Table(
    "platform_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("region", String(40), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("subject", String(200), nullable=False, server_default=""),
    Column("detail", JSON, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("fingerprint", String(300), nullable=False),
    Column("name", String(100), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("state", String(20), nullable=False),
    Column("summary", Text, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("resolved_at", Float, nullable=True),
    Column("acked_at", Float, nullable=True),
    Column("acked_by", String(200), nullable=True),
    Column("silenced", Integer, nullable=False, server_default="0"),
    Index("ix_alerts_fingerprint", "fingerprint", "state"),
    Index("ix_alerts_state", "state", "started_at"),
)

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("alert_id", Id, ForeignKey("alerts.id"), nullable=False),
    Column("at", Float, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_alert_events_alert", "alert_id", "at"),
)

silences = Table(
    "silences",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    # Every label given here must equal the alert's label for the silence to apply.
    Column("labels", JSON, nullable=False),
    Column("until", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("alert_id", Id, ForeignKey("alerts.id"), nullable=False),
    Column("notifier", String(100), nullable=False),
    Column("event", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
    Column("last_error", Text, nullable=True),
    Index("ix_notifications_due", "delivered_at", "next_attempt_at"),
)

# Per-interval sums written by each process (worker, API); the monitor folds and deletes them.
metric_deltas = Table(
    "metric_deltas",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("region", String(40), nullable=False),
    Column("instance_id", String(100), nullable=False),
    Column("bucket", BigInteger, nullable=False),  # floor(time / interval)
    Column("name", String(60), nullable=False),
    Column("value", Float, nullable=False),
    Index("ix_metric_deltas_bucket", "bucket"),
)

# The region's time series: raw points at `metrics_interval` and 60 s rollups (mean/min/max).
metric_points = Table(
    "metric_points",
    metadata,
    Column("region", String(40), primary_key=True),
    Column("name", String(60), primary_key=True),
    Column("resolution", Float, primary_key=True),
    Column("ts", Float, primary_key=True),  # the start of the interval
    Column("value", Float, nullable=False),
    Column("count", Integer, nullable=False, server_default="1"),
    Column("min", Float, nullable=False),
    Column("max", Float, nullable=False),
    Index("ix_metric_points_resolution_ts", "resolution", "ts"),
)

# Flags in force in this region (a row per flag that is set) and every change to them.
flags = Table(
    "flags",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(200), nullable=False),
)

# Every change made in the region: flag values and deploys (a process running a version or a
# configuration its predecessor did not). Alerts name the ones made shortly before they fired.
changes = Table(
    "changes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("region", String(40), nullable=False),
    Column("kind", String(20), nullable=False),  # flag | deploy
    Column("subject", String(200), nullable=False),  # the flag's or the service's name
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("by", String(200), nullable=False, server_default=""),
    Column("detail", Text, nullable=False, server_default=""),
    Index("ix_changes_at", "at"),
)

flag_history = Table(
    "flag_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("value", JSON, nullable=True),  # null: unset
    Column("previous", JSON, nullable=True),
    Column("at", Float, nullable=False),
    Column("by", String(200), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Index("ix_flag_history_name", "name", "at"),
)

# Mail `steadymail inbound` took for the platform (bounces, complaints, anything sent to a
# return path): kept whole before it is read, so a report that cannot be read is there for a
# person (`status = review`), never lost.
inbound_reports = Table(
    "inbound_reports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("received_at", Float, nullable=False),
    Column("mail_from", String(400), nullable=False, server_default=""),
    Column("rcpt", String(400), nullable=False),
    Column("size", Integer, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    # hard_bounce, soft_bounce, complaint, autoreply, unknown; empty until read.
    Column("kind", String(20), nullable=False, server_default=""),
    Column("message_id", Id, nullable=True),
    # received, applied, ignored, review
    Column("status", String(20), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Index("ix_inbound_reports_status", "status", "id"),
)

# Event webhooks: a customer's endpoint and the events it takes. The secret signs requests
# (Standard Webhooks); it is shown once, when the webhook is created.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False),
    Column("events", JSON, nullable=False),
    Column("secret", String(200), nullable=False),
    Column("description", String(200), nullable=False, server_default=""),
    Column("enabled", Integer, nullable=False, server_default="1"),
    Column("disabled_reason", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    # The read cursors' positions when it was created: it takes the events after them.
    Column("starts", JSON, nullable=False),
    # Since when every attempt has failed (none: the last one succeeded).
    Column("failing_since", Float, nullable=True),
    Column("last_success_at", Float, nullable=True),
    Column("last_error", Text, nullable=False, server_default=""),
)

# The durable outbox: one row per event per webhook. Pending rows are taken, oldest first, into
# a batch (one request); a webhook has one undelivered batch at a time, so its events arrive in
# order, and a message's events in particular.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("webhook_id", Id, nullable=False),
    Column("event_id", String(40), nullable=False),
    Column("message_id", Id, nullable=True),
    Column("at", Float, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("batch_id", String(40), nullable=True),
    # pending, batched, delivered, dead
    Column("state", String(20), nullable=False),
    Index("ix_webhook_deliveries_next", "webhook_id", "state", "id"),
    Index("ix_webhook_deliveries_batch", "batch_id"),
)

webhook_batches = Table(
    "webhook_batches",
    metadata,
    # The `webhook-id` of the request: the same on every retry.
    Column("id", String(40), primary_key=True),
    Column("webhook_id", Id, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("events", Integer, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    # open, delivered, dead
    Column("state", String(20), nullable=False),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("delivered_at", Float, nullable=True),
    Index("ix_webhook_batches_open", "webhook_id", "state", "created_at"),
)

# How far the dispatcher has read each event table, and the ids it skipped that may still
# commit (a transaction that took its id earlier commits later): read again until they come or
# are old enough to have been rolled back.
webhook_cursors = Table(
    "webhook_cursors",
    metadata,
    Column("source", String(40), primary_key=True),
    Column("position", Id, nullable=False),
    Column("gaps", JSON, nullable=False),
)

# Sending domains (deliverability/): a domain is verified when its last DNS check found every
# record; its DKIM keys go pending -> active (found published) -> retiring (a newer key of its
# algorithm became active: still published, no longer signing) -> retired.
sending_domains = Table(
    "sending_domains",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(253), nullable=False, unique=True),
    Column("return_path_domain", String(253), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("checked_at", Float, nullable=True),
    Column("verified_at", Float, nullable=True),
)

dkim_keys = Table(
    "dkim_keys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("domain_id", Id, ForeignKey("sending_domains.id"), nullable=False),
    Column("selector", String(63), nullable=False),
    Column("algorithm", String(20), nullable=False),
    Column("key_file", Text, nullable=False),
    Column("public_key", Text, nullable=False),
    Column("state", String(20), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("activated_at", Float, nullable=True),
    Column("retiring_at", Float, nullable=True),
    UniqueConstraint("domain_id", "selector", name="uq_dkim_keys_domain_selector"),
)
