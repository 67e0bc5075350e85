"""Every Prometheus metric name, in one module (base units, `_total`, `_seconds`).

Each process serves its own /metrics on its --metrics-port only (bound to CCHC_METRICS_HOST, 127.0.0.1
unless set), never on a public port: they hold the live counts a period's freeze keeps from the public
(DESIGN §3); and several processes of one tier sharing an API port can each be scraped. The system-wide
gauges (stream, lag, periods) are refreshed by the monitor in the results process (ops/monitor.py)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

# -- HTTP, every app ---------------------------------------------------------------------------
REQUESTS = Counter("cchc_http_requests_total", "HTTP requests answered", ["app", "route", "status"])
REQUEST_SECONDS = Histogram("cchc_http_request_duration_seconds", "HTTP request latency", ["app", "route"],
                            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
OVERLOAD_REFUSED = Counter("cchc_overload_refused_total", "Requests refused with 503 because too many were in flight",
                           ["app"])
STORE_UNAVAILABLE = Counter("cchc_store_unavailable_total", "Requests answered 503 because a server was down",
                            ["app"])

# -- ingest outcomes ------------------------------------------------------------------------------
SUBMISSIONS = Counter("cchc_ingest_submissions_total", "Submissions by outcome "
                      "(accepted, duplicate, period_closed, deadline_passed, invalid)", ["outcome"])
REGISTRATIONS = Counter("cchc_ingest_registrations_total", "Registrations by outcome", ["outcome"])
RATE_LIMITED = Counter("cchc_rate_limited_total", "Requests refused with 429 (a client address over its limit)",
                       ["route"])
ATTEMPTS = Counter("cchc_ingest_attempts_total", "Attempt starts by outcome", ["outcome"])
ERASURES = Counter("cchc_erasures_total", "Participants whose personal data was erased, by whom (participant, committee,"
                   " retention; repeated: asked again, nothing more to erase)", ["by"])
ERASURE_LOG_FAILURES = Counter("cchc_erasure_log_failures_total", "Erasures made whose line the erasure log beside the"
                               " backups could not take (RUNBOOK: erasure requests)")

# -- one clock (DESIGN §3): processes that stamp times read the store's ---------------------------------
CLOCK_OFFSET = Gauge("cchc_clock_offset_seconds", "This host's wall clock minus the store's TIME, as last read "
                     "(positive: ahead; reference: the store, or a cluster master)", ["reference"])
CLOCK_IN_STEP = Gauge("cchc_clock_in_step", "1 when this process may stamp times (a recent, certain reading within "
                      "50 ms of the reference), else 0: it refuses attempt starts and submissions", ["reference"])

# -- scorers --------------------------------------------------------------------------------------
SCORER_EVENTS = Counter("cchc_scorer_events_total", "Events archived and projected", ["consumer"])
SCORER_BATCH_SECONDS = Histogram("cchc_scorer_batch_duration_seconds", "Scorer batch latency", ["consumer"])
SCORER_BATCH_ENTRIES = Histogram("cchc_scorer_batch_entries", "Stream entries per scorer batch", ["consumer"],
                                 buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000))
SCORER_FRESHNESS = Histogram(
    "cchc_scorer_freshness_seconds", "Per batch: from the oldest entry's append (its 202) to the commit that makes"
    " it visible in the leaderboards (an upper bound for every event of the batch)", ["consumer"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0))
SCORER_POISON = Counter("cchc_scorer_poison_entries_total", "Entries parked in the dead-letter stream",
                        ["consumer"])
SCORER_STREAMS = Gauge("cchc_scorer_streams", "Streams this scorer holds a lease on (reads)", ["consumer"])
SCORER_ERRORS = Counter("cchc_scorer_errors_total", "Scorer steps that failed (database or Redis errors)",
                        ["consumer", "kind"])
WAL_ARCHIVE_BEHIND = Gauge("cchc_wal_archive_behind_bytes", "PostgreSQL's WAL not yet in the archive (all of it when "
                           "no archive is known), as a scorer read it before trimming: the stream keeps every "
                           "entry whose commit is not in the archive (DESIGN §10)", ["consumer"])

# -- the system, refreshed by the monitor -----------------------------------------------------------
# Per stream: "contest" (registrations, contest-wide events) or a partition's number.
STREAM_LENGTH = Gauge("cchc_stream_length", "Entries in each event stream (trimmed below what is archived)",
                      ["stream"])
GROUP_LAG = Gauge("cchc_stream_group_lag", "Entries of each stream not yet delivered to its consumer group", ["stream"])
GROUP_PENDING = Gauge("cchc_stream_group_pending", "Entries delivered but not acknowledged", ["stream"])
OLDEST_UNPROCESSED = Gauge("cchc_stream_oldest_unprocessed_age_seconds",
                           "Age of the oldest entry not yet archived and projected (projection freshness)",
                           ["stream"])
STREAM_LEASED = Gauge("cchc_stream_leased", "1 when a scorer holds the stream's lease (reads it), else 0", ["stream"])
DEAD_LETTERS = Gauge("cchc_stream_dead_letters", "Entries in each stream's dead-letter stream", ["stream"])
HEARTBEAT_AGE = Gauge("cchc_scorer_heartbeat_age_seconds", "Seconds since each beating scorer's last beat",
                      ["consumer"])
SCORERS_ALIVE = Gauge("cchc_scorers_alive", "Scorers with a live heartbeat")
PERIOD_STATUS = Gauge("cchc_period_status", "0 upcoming, 1 open, 2 closing (ended, not closed), 3 closed",
                      ["period"])
PERIOD_END = Gauge("cchc_period_end_timestamp_seconds", "When each period ends", ["period"])
PERIOD_ENTRIES = Gauge("cchc_period_entries", "Valid entries projected per period and group", ["period", "group"])
PERIOD_PARTICIPANTS = Gauge("cchc_period_participants", "Participants with a valid entry per period and group",
                            ["period", "group"])
REDIS_MEMORY_USED = Gauge("cchc_redis_memory_used_bytes", "Memory Redis/Valkey uses")
REDIS_MEMORY_MAX = Gauge("cchc_redis_memory_max_bytes", "Its maxmemory (0: none); past it writes are refused, "
                         "never evicted (noeviction)")
REPLICA_STALENESS = Gauge("cchc_database_replica_staleness_seconds",
                          "How far behind its primary the PostgreSQL replica the results API reads is (0: caught up)")
MONITOR_REFRESHED = Gauge("cchc_monitor_last_refresh_timestamp_seconds", "When the monitor last refreshed")

PERIOD_STATUS_CODES = {"upcoming": 0, "open": 1, "closing": 2, "closed": 3}


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
