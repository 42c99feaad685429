-- crmonban schema, version 1.
--
-- Conventions: times are Unix seconds (UTC) in INTEGER columns; a target or network is the
-- canonical text of crmonban_core::Target (its Display form: "192.0.2.7", "10.0.0.0/8",
-- "2001:db8::/32"), so equal targets are equal strings. Tables are STRICT so that a value of
-- the wrong type is refused on write instead of surfacing later as a corrupt row.

-- Every ban ever made. Rows are never deleted: an ended ban keeps its row with unbanned_at and
-- unban_reason set, which is what repeat-offender escalation counts.
CREATE TABLE bans (
    id           INTEGER PRIMARY KEY,
    target       TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    source       TEXT    NOT NULL,            -- BanSource text: detector, dbus, restore, ...
    service      TEXT,                        -- NULL for manual bans
    banned_at    INTEGER NOT NULL,
    expires_at   INTEGER,                     -- NULL: permanent
    unbanned_at  INTEGER,                     -- NULL: not ended (active until expires_at)
    unban_reason TEXT,                        -- expired, unban, flush, superseded, ...
    offence      INTEGER NOT NULL             -- 1 for a target's first ban, 2 for its second...
) STRICT;

-- History and offence counts of one target; active_ban(target) filters the few rows it finds.
CREATE INDEX bans_by_target ON bans (target, banned_at);
-- Only rows not yet ended: restore at start, counting, and the expiry sweep (expires_at <= now)
-- read this small index instead of the whole history.
CREATE INDEX bans_active_by_expiry ON bans (expires_at) WHERE unbanned_at IS NULL;

-- Hostile acts reported by detectors.
CREATE TABLE events (
    id      INTEGER PRIMARY KEY,
    addr    TEXT    NOT NULL,
    service TEXT    NOT NULL,
    kind    TEXT    NOT NULL,                 -- EventKind text: failed_auth, invalid_user, ...
    time    INTEGER,                          -- the log line's own time; NULL when it had none
    seen_at INTEGER NOT NULL                  -- when crmonban read the line
) STRICT;

CREATE INDEX events_by_addr ON events (addr, time);
-- Queries "since T" compare coalesce(time, seen_at), the same expression, so this index serves them.
CREATE INDEX events_by_time ON events (coalesce(time, seen_at));

-- Cache of intelligence gathered about an address (GeoIP, rDNS, WHOIS, ...), as JSON.
CREATE TABLE intel (
    addr        TEXT    PRIMARY KEY,
    data        TEXT    NOT NULL CHECK (json_valid(data)),
    gathered_at INTEGER NOT NULL
) STRICT;

-- Networks that are never banned.
CREATE TABLE whitelist (
    net      TEXT    PRIMARY KEY,
    comment  TEXT    NOT NULL DEFAULT '',
    added_at INTEGER NOT NULL
) STRICT;

-- What the daemon did and why, for `crmonctl logs`.
CREATE TABLE activity_log (
    id     INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    action TEXT    NOT NULL,
    target TEXT,
    detail TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX activity_log_by_at ON activity_log (at);

-- Where each log source was last read, so that a restart resumes instead of replaying.
-- source is a file path or "journal:<match>". inode and first_line_hash are u64 values stored
-- bit for bit in a signed INTEGER; "offset" is a byte offset; cursor is a journald cursor.
CREATE TABLE log_positions (
    source          TEXT    PRIMARY KEY,
    inode           INTEGER,
    "offset"        INTEGER,
    first_line_hash INTEGER,
    cursor          TEXT,
    updated_at      INTEGER NOT NULL
) STRICT;
