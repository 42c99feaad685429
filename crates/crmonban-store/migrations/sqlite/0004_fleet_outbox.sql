-- What this node has to publish to the fleet ([fleet]), kept here until the fleet database
-- took it: the fleet being down never loses a publication, and a restart sends what waited.
CREATE TABLE fleet_outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('ban', 'unban')),
    target      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    service     TEXT,
    first_seen  INTEGER,
    last_seen   INTEGER,
    expires_at  INTEGER,
    queued_at   INTEGER NOT NULL
);

-- How far this node has applied each fleet's changes (the last id), by fleet database.
CREATE TABLE fleet_cursor (
    fleet       TEXT PRIMARY KEY,
    last_id     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
