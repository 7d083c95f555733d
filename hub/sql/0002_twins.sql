-- Device twins (docs/twins.md): one record per device that ever had a change, kept whole as `json`
-- (its text exactly as the hub wrote it: every key kept, `__proto__` included). Every change of
-- a device's twin, and its deletion, first takes a transaction-scoped advisory lock on the device
-- id, also when the device has no row yet: two nodes never both build a twin from nothing, and of
-- two changes one always sees the other's result.
CREATE TABLE twins (
  device text COLLATE "C" PRIMARY KEY,
  record json NOT NULL
);
