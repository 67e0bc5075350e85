-- The permanent, ordered, append-only record of every event, and each consumer's progress.
CREATE TABLE IF NOT EXISTS events (
    stream_ms   bigint      NOT NULL,  -- stream entry id "ms-seq" ...
    stream_seq  bigint      NOT NULL,
    idx         integer     NOT NULL,  -- ... plus the event's index within the entry
    kind        text        NOT NULL,
    body        bytea       NOT NULL,  -- msgpack of the one event
    archived_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_ms, stream_seq, idx)
);
-- The attempt an attempt_started event opens: a close counts no submission without one (DESIGN §3).
ALTER TABLE events ADD COLUMN IF NOT EXISTS ref text;
CREATE INDEX IF NOT EXISTS events_attempt_started ON events (ref) WHERE kind = 'attempt_started';

CREATE TABLE IF NOT EXISTS consumer_progress (
    consumer    text        PRIMARY KEY,
    last_entry  text        NOT NULL,
    events      bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
