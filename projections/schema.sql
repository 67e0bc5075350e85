-- Projections: rebuildable at any time from the event table.
CREATE TABLE IF NOT EXISTS participants (
    participant_id text    PRIMARY KEY,
    group_code     text    NOT NULL,
    unit_code      text,
    display_name   text    NOT NULL,
    phone_masked   text    NOT NULL,
    id_hash        text    NOT NULL,
    phone_hash     text    NOT NULL,
    pii            bytea   NOT NULL,  -- AES-GCM sealed (eventstore.pii; under the participant's data key, in the keyring)
    registered_ms  bigint  NOT NULL
);
-- Keyed hash of the client address a participant registered from: many from one is a flag (counted through the
-- index, in address order, without a hash table of a million addresses).
ALTER TABLE participants ADD COLUMN IF NOT EXISTS address_hash text NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS participants_address ON participants (address_hash) WHERE address_hash <> '';

-- Corrections keep the key of their event: a close counts only those at or below its barrier.
CREATE TABLE IF NOT EXISTS disqualifications (
    participant_id text    PRIMARY KEY,
    reason         text    NOT NULL,
    at_ms          bigint  NOT NULL,
    ev_ms          bigint  NOT NULL,
    ev_seq         bigint  NOT NULL,
    ev_idx         integer NOT NULL
);
ALTER TABLE disqualifications ADD COLUMN IF NOT EXISTS ev_part smallint NOT NULL DEFAULT 0;  -- the event's stream

CREATE TABLE IF NOT EXISTS answer_key_corrections (
    ev_ms          bigint  NOT NULL,
    ev_seq         bigint  NOT NULL,
    ev_part        smallint NOT NULL,
    ev_idx         integer NOT NULL,
    question_id    text    NOT NULL,
    answer         text    NOT NULL,
    at_ms          bigint  NOT NULL,
    PRIMARY KEY (ev_ms, ev_seq, ev_part, ev_idx)
);
ALTER TABLE answer_key_corrections ADD COLUMN IF NOT EXISTS ev_part smallint NOT NULL DEFAULT 0;

-- Participants moved to another unit by the committee (DESIGN §3 "Corrections"), keyed by their event: a
-- participant's unit now is their latest move; a result's, the latest its barrier covers.
CREATE TABLE IF NOT EXISTS unit_moves (
    ev_ms          bigint   NOT NULL,
    ev_seq         bigint   NOT NULL,
    ev_part        smallint NOT NULL,
    ev_idx         integer  NOT NULL,
    participant_id text     NOT NULL,
    unit_code      text     NOT NULL,
    at_ms          bigint   NOT NULL,
    PRIMARY KEY (ev_ms, ev_seq, ev_part, ev_idx)
);
CREATE INDEX IF NOT EXISTS unit_moves_participant ON unit_moves (participant_id);

-- Every submitted entry, scored; partitioned by period like the event table (migrate adds them).
CREATE TABLE IF NOT EXISTS entries (
    attempt_id     text    NOT NULL,
    submission_id  text    NOT NULL,
    participant_id text    NOT NULL,
    period         integer NOT NULL,
    group_code     text    NOT NULL,
    unit_code      text,
    score          integer NOT NULL,
    correct        integer NOT NULL,
    questions      integer NOT NULL,
    duration_ms    bigint  NOT NULL,
    prediction     bigint  NOT NULL,
    submitted_ms   bigint  NOT NULL,
    question_ids   text[]  NOT NULL,
    answers        bytea   NOT NULL,  -- msgpack {question_id: choice}, read back only to rescore
    ev_ms          bigint  NOT NULL,  -- the submission event's key: a close counts those up to its barrier
    ev_seq         bigint  NOT NULL,
    ev_part        smallint NOT NULL DEFAULT 0,
    ev_idx         integer NOT NULL,
    PRIMARY KEY (period, attempt_id)  -- an attempt belongs to one period
) PARTITION BY LIST (period);
CREATE TABLE IF NOT EXISTS entries_default PARTITION OF entries DEFAULT;
-- A participant's entries of a period in the order they were sent: the standing read (live_queries.PERSON_IN_PERIOD)
-- walks it without a sort, so the planner takes it even while a period's partition has no statistics yet.
CREATE INDEX IF NOT EXISTS entries_participant_sent ON entries (period, participant_id, submitted_ms);
-- (period, participant_id), which the one above replaces: dropped after it is built, so that reads go on
-- during the build (CREATE INDEX blocks writes only; DROP INDEX locks the table, for an instant).
DROP INDEX IF EXISTS entries_period_participant;
-- Correct answers as the public saw them at the period's freeze, where a correction made later changed
-- them (else NULL): the frozen projections stand still until the close (DESIGN §3).
ALTER TABLE entries ADD COLUMN IF NOT EXISTS frozen_correct integer;
-- A 64-bit hash of the answer sheet (answers keyed in question order) and the prediction, NULL for an empty sheet:
-- the committee's copied-entry flags group by it through its index, not by the sheets themselves (a hash table of
-- 3 M wide keys took 9 s of the desk's 10; BENCHMARKS.md), then compare the candidates' sheets exactly. Entries
-- projected before it have none: `cchc replay` gives them one.
ALTER TABLE entries ADD COLUMN IF NOT EXISTS sheet bigint;
CREATE INDEX IF NOT EXISTS entries_sheet ON entries (period, sheet) WHERE sheet IS NOT NULL;

-- The live counted entry per participant and period (provisional order, or first/last).
CREATE TABLE IF NOT EXISTS counted (
    period         integer NOT NULL,
    participant_id text    NOT NULL,
    group_code     text    NOT NULL,
    unit_code      text,
    attempt_id     text    NOT NULL,
    score          integer NOT NULL,
    correct        integer NOT NULL,
    duration_ms    bigint  NOT NULL,
    prediction     bigint  NOT NULL,
    submitted_ms   bigint  NOT NULL,
    PRIMARY KEY (period, participant_id)
);
CREATE INDEX IF NOT EXISTS counted_order
    ON counted (period, group_code, score DESC, duration_ms, submitted_ms, attempt_id);

-- Closed periods: one row per revision, frozen. prizes = canonical /prizes JSON.
CREATE TABLE IF NOT EXISTS period_results (
    period         integer     NOT NULL,
    revision       integer     NOT NULL,
    results_digest text        NOT NULL,
    barrier        text        NOT NULL,  -- stream id: the result counts exactly the events up to it
    prizes         text        NOT NULL,
    units          text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (period, revision)
);

-- One partition per revision (results_queries.save_result loads it, indexes it, then attaches it:
-- two sorted index builds instead of a million random inserts into a table holding every revision).
CREATE TABLE IF NOT EXISTS final_ranking (
    period           integer NOT NULL,
    revision         integer NOT NULL,
    group_code       text    NOT NULL,
    rank             integer NOT NULL,
    participant_id   text    NOT NULL,
    unit_code        text,
    attempt_id       text    NOT NULL,
    score            integer NOT NULL,
    correct          integer NOT NULL,
    duration_ms      bigint  NOT NULL,
    prediction       bigint  NOT NULL,
    prediction_error bigint  NOT NULL,
    submitted_ms     bigint  NOT NULL,
    display_name     text,   -- as the participants' projection showed them at the close; an erasure rewrites them
    phone_masked     text,   -- (results_queries.erase_names): read with the rank, no look-up per row
    PRIMARY KEY (period, revision, group_code, rank)
) PARTITION BY RANGE (period, revision);
CREATE INDEX IF NOT EXISTS final_ranking_participant ON final_ranking (period, revision, participant_id);
ALTER TABLE final_ranking ADD COLUMN IF NOT EXISTS display_name text;  -- eventstore.postgres.migrate fills them
ALTER TABLE final_ranking ADD COLUMN IF NOT EXISTS phone_masked text;

CREATE TABLE IF NOT EXISTS final_results (
    revision   integer     PRIMARY KEY,
    document   text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The keyring (DESIGN §10), not a projection: a replay never empties it, a restore brings it back as it was
-- (then the erasure log is applied again: ops/erasure.py). Per participant, what ingest kept beside its keys
-- in Redis and the scorer that projected its registration copied here (the event record never carries it):
-- its data key wrapped by CCHC_PII_KEY, and the plain values the projections show or compare. An erasure
-- overwrites the row with NULLs and the time: the sealed copies of the participant's data (the event, the
-- projection's `pii`) can no longer be opened, and a replay projects the participant as erased.
CREATE TABLE IF NOT EXISTS participant_personal (
    participant_id text   PRIMARY KEY,
    wrapped_key    bytea,
    display_name   text,
    phone_masked   text,
    id_hash        text,
    phone_hash     text,
    address_hash   text,
    erased_ms      bigint  -- NULL while not erased
);
-- The erased, for a close that publishes a ranking while they are erased (results_queries.erase_names_since).
CREATE INDEX IF NOT EXISTS participant_personal_erased ON participant_personal (participant_id)
    WHERE erased_ms IS NOT NULL;
