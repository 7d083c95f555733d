-- The cluster runtime (docs/cluster.md): which nodes run, and which node holds each device's session.
-- Liveness is judged on PostgreSQL's clock alone (now_ms), so that nodes on machines whose clocks
-- differ agree on which node is alive.

-- Now, in Unix milliseconds, on the server's clock.
CREATE FUNCTION now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS $$
  SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint
$$;

-- One row per node that has run: written when it starts, its `last_seen_at` renewed by each
-- heartbeat; a node whose last beat is older than the hub's bound is dead. A node that stops
-- cleanly deletes its row.
CREATE TABLE nodes (
  id text COLLATE "C" PRIMARY KEY,
  started_at bigint NOT NULL,
  last_seen_at bigint NOT NULL,
  sessions integer NOT NULL DEFAULT 0,
  version text NOT NULL
);

-- Each device's session owner: `node` holds the live session (NULL: none), `epoch` grows with every
-- session opened anywhere (one sequence for all), so a node knows whether its session is the newest.
-- A row is cleared only by the node and epoch that set it, or by a survivor once its node is dead.
CREATE SEQUENCE session_epochs;
CREATE TABLE device_sessions (
  device text COLLATE "C" PRIMARY KEY,
  node text COLLATE "C",
  epoch bigint NOT NULL,
  connected_at bigint
);
CREATE INDEX device_sessions_node ON device_sessions (node) WHERE node IS NOT NULL;
