-- Fleetgate's shared state in cluster mode (docs/cluster.md), in the schema `fleetgate`.
-- Each record is kept whole as `json` (its text exactly as the hub wrote it: key order, escapes
-- such as \u0000 that `text` and `jsonb` refuse); the other columns are what the hub looks records
-- up by, written with the record in the same statement. Keys sort bytewise (COLLATE "C"), as in
-- the embedded store, so cursors page alike. Times are Unix milliseconds.

-- The registry. `version` comes from `device_versions`, drawn while the row is locked, so the
-- versions of one device's changes increase in the order they commit; every change sends
-- `fleetgate_registry` (payload `version:id,...`) in its own transaction, and each node's cache
-- keeps the highest version it has seen.
CREATE SEQUENCE device_versions;
CREATE TABLE devices (
  id text COLLATE "C" PRIMARY KEY,
  record json NOT NULL,
  version bigint NOT NULL
);
-- The tag index: tag values are any text, NUL included, so they are kept as UTF-8 bytes.
CREATE TABLE device_tags (
  name text COLLATE "C" NOT NULL,
  value bytea NOT NULL,
  device text COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  PRIMARY KEY (name, value, device)
);
CREATE INDEX device_tags_device ON device_tags (device);
-- When each device's last session ended, apart from the record so that a disconnect writes one number.
CREATE TABLE device_last_seen (
  device text COLLATE "C" PRIMARY KEY,
  at bigint NOT NULL
);

-- Commands. `node` is the node that wrote the current status: for `sent`, the node whose device
-- session has the command and whose timer ends it.
CREATE TABLE commands (
  device text COLLATE "C" NOT NULL,
  id text COLLATE "C" NOT NULL,
  created_at bigint NOT NULL,
  status text NOT NULL,
  expires_at bigint,
  batch text COLLATE "C",
  node text COLLATE "C" NOT NULL,
  record json NOT NULL,
  PRIMARY KEY (device, id)
);
CREATE INDEX commands_order ON commands (device, created_at, id);
CREATE INDEX commands_queued ON commands (device, created_at, id) WHERE status = 'queued';
CREATE INDEX commands_expiry ON commands (expires_at, device, id) WHERE status = 'queued' AND expires_at IS NOT NULL;
CREATE INDEX commands_sent ON commands (node, device, id) WHERE status = 'sent';
CREATE INDEX commands_batch ON commands (batch, device) WHERE batch IS NOT NULL;

-- Fan-outs as recorded when they start, and their commands counted by status. The counts are kept
-- by triggers on `commands`, in the transaction that changes a command, whichever node writes it:
-- one row per batch and status, changed once per statement, in key order.
CREATE TABLE command_batches (
  batch text COLLATE "C" PRIMARY KEY,
  info json NOT NULL
);
CREATE TABLE command_batch_counts (
  batch text COLLATE "C" NOT NULL,
  status text NOT NULL,
  n bigint NOT NULL,
  PRIMARY KEY (batch, status)
);
CREATE FUNCTION command_batch_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO command_batch_counts AS c (batch, status, n)
  SELECT batch, status, count(*) FROM inserted WHERE batch IS NOT NULL GROUP BY batch, status ORDER BY batch, status
  ON CONFLICT (batch, status) DO UPDATE SET n = c.n + EXCLUDED.n;
  RETURN NULL;
END $$;
CREATE FUNCTION command_batch_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO command_batch_counts AS c (batch, status, n)
  SELECT batch, status, sum(delta) FROM (
    SELECT batch, status, 1 AS delta FROM after_rows WHERE batch IS NOT NULL
    UNION ALL
    SELECT batch, status, -1 AS delta FROM before_rows WHERE batch IS NOT NULL
  ) AS moves
  GROUP BY batch, status HAVING sum(delta) <> 0 ORDER BY batch, status
  ON CONFLICT (batch, status) DO UPDATE SET n = c.n + EXCLUDED.n;
  RETURN NULL;
END $$;
CREATE TRIGGER commands_counted_inserted AFTER INSERT ON commands
  REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION command_batch_counts_inserted();
CREATE TRIGGER commands_counted_updated AFTER UPDATE ON commands
  REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows FOR EACH STATEMENT EXECUTE FUNCTION command_batch_counts_updated();

-- The audit log. Seqs come from the one row of `audit_next`, taken under its row lock until the
-- appending transaction commits: appends commit in seq order and leave no gaps, so a reader that
-- pages by `after` never passes an entry that commits later.
CREATE TABLE audit (
  seq bigint PRIMARY KEY,
  entry json NOT NULL
);
CREATE TABLE audit_next (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  seq bigint NOT NULL
);
INSERT INTO audit_next (seq) VALUES (1);
