-- The fleet database (PostgreSQL), shared by every crmonban node of a fleet. Each node keeps
-- its own record in its SQLite database; here only what nodes share.

-- Nodes and their heartbeats.
CREATE TABLE fleet_nodes (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
    version     text NOT NULL DEFAULT '',
    first_seen  bigint NOT NULL,
    last_seen   bigint NOT NULL
);

-- Every ban and unban a node shared, in the order this database took them: a node applies
-- what lies after the last id it applied (LISTEN/NOTIFY tells it that there is more; the rows
-- are read from here, so no notification payload limit applies). Times are Unix seconds.
CREATE TABLE fleet_changes (
    id          bigserial PRIMARY KEY,
    node        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('ban', 'unban')),
    -- crmonban's canonical text of an address or network; the cast refuses anything else.
    target      text NOT NULL CHECK (length(target) <= 64 AND target::cidr IS NOT NULL),
    reason      text NOT NULL DEFAULT '' CHECK (length(reason) <= 512),
    service     text CHECK (service IS NULL OR length(service) <= 64),
    first_seen  bigint,
    last_seen   bigint,
    -- NULL: a permanent ban (or an unban).
    expires_at  bigint,
    created_at  bigint NOT NULL
);
CREATE INDEX fleet_changes_target ON fleet_changes (target, id);
CREATE INDEX fleet_changes_created ON fleet_changes (created_at);

-- Networks no node ever bans, whatever a node publishes: consulted by every node.
CREATE TABLE fleet_whitelist (
    network     text PRIMARY KEY CHECK (length(network) <= 64 AND network::cidr IS NOT NULL),
    comment     text NOT NULL DEFAULT '',
    added_at    bigint NOT NULL
);
