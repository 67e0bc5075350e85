-- The permanent, ordered, append-only record of every event, and each consumer's progress.
-- Partitioned by period (DESIGN §4): partition 0 holds what belongs to no period (registrations,
-- corrections, disqualifications); `cchc migrate` adds one per period of the contest; the default
-- partition takes a period not defined yet (its rows move when its partition is created).
CREATE TABLE IF NOT EXISTS events (
    stream_ms   bigint      NOT NULL,  -- stream entry id "ms-seq" ...
    stream_seq  bigint      NOT NULL,
    part        smallint    NOT NULL,  -- ... of stream `part` (-1 the contest's, 0… a partition; 32767 results markers)
    idx         integer     NOT NULL,  -- ... plus the event's index within the entry
    period      integer     NOT NULL,  -- the event's period, 0 for none
    kind        text        NOT NULL,
    body        bytea       NOT NULL,  -- msgpack of the one event
    ref         text,                  -- the attempt an attempt_started event opens (a close counts no
                                       -- submission without one, DESIGN §3)
    archived_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_ms, stream_seq, part, idx, period)  -- the replay order, then the partition key
) PARTITION BY LIST (period);
CREATE TABLE IF NOT EXISTS events_default PARTITION OF events DEFAULT;
CREATE INDEX IF NOT EXISTS events_attempt_started ON events (ref) WHERE kind = 'attempt_started';
-- The committee's actions, newest first (the desk's audit view, DESIGN §6b): a few rows among millions.
-- The kinds are eventstore.events.COMMITTEE_KINDS' (a test checks they agree).
CREATE INDEX IF NOT EXISTS events_committee ON events (stream_ms, stream_seq, part, idx)
    WHERE kind IN ('participant_disqualified', 'answer_key_corrected', 'results_published', 'participant_moved',
                   'access_key_reset', 'committee_read', 'participant_erased');

CREATE TABLE IF NOT EXISTS consumer_progress (
    consumer    text        PRIMARY KEY,
    last_entry  text        NOT NULL,
    events      bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every restore of this database from the backups (`cchc restore`, DESIGN §10). Until a row is reconciled,
-- a scorer starting rewinds each stream's consumer group to the first entry the restored table lacks, so
-- what was acknowledged after the restore point is archived again, once (ops/restore.py).
CREATE TABLE IF NOT EXISTS restores (
    restored_at   timestamptz PRIMARY KEY DEFAULT clock_timestamp(),
    target        text        NOT NULL,  -- 'latest' or the time restored to
    base_backup   text        NOT NULL,
    reconciled_at timestamptz
);
