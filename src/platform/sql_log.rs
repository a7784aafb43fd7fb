//! A channel's history in the Durable Object's SQLite storage.
//!
//! The tables are created by the first write, never by a read: an object that is only
//! asked for its stats (or listened to) writes nothing.

use worker::{SqlCursor, SqlStorage, SqlStorageValue};

use crate::domain::{EventId, EventLog, LogError, StoredEvent};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, frame TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// Keys and routes of events on a filtering host (the Mercure hub); a channel never
/// writes one, so its database never has this table.
const KEYS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS keys (id INTEGER PRIMARY KEY, key TEXT, route TEXT);
CREATE INDEX IF NOT EXISTS keys_by_key ON keys (key, id);
";

/// The `meta` row holding the high-water mark of ids (named before reservations existed,
/// when it was always the last stored id).
const HIGH_WATER_KEY: &str = "last_id";

/// The SQL log caches its small summary (high-water mark, newest and oldest event,
/// length) in memory, so publishing costs one insert and, once history is full, one delete.
pub struct SqlLog {
    sql: SqlStorage,
    /// Whether the tables exist (created by the first write).
    created: bool,
    /// Whether the `keys` table exists (created by the first keyed event).
    keyed: bool,
    high_water: EventId,
    /// What the `meta` row holds. The high-water mark is durable when this or the newest
    /// stored event covers it, so a stored publish needs no second write.
    durable_high_water: EventId,
    newest: EventId,
    oldest: Option<(EventId, u64)>,
    len: u64,
}

fn fail(e: worker::Error) -> LogError {
    LogError(e.to_string())
}

fn integer(value: &SqlStorageValue) -> Option<u64> {
    match value {
        SqlStorageValue::Integer(i) => u64::try_from(*i).ok(),
        SqlStorageValue::Float(f) if *f >= 0.0 && f.fract() == 0.0 => Some(*f as u64),
        _ => None,
    }
}

fn rows(cursor: SqlCursor) -> Result<Vec<Vec<SqlStorageValue>>, LogError> {
    cursor.raw().map(|row| row.map_err(fail)).collect()
}

fn text(value: &SqlStorageValue) -> Option<String> {
    match value {
        SqlStorageValue::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn text_arg(value: &Option<String>) -> SqlStorageValue {
    match value {
        Some(s) => SqlStorageValue::String(s.clone()),
        None => SqlStorageValue::Null,
    }
}

fn int_arg(n: u64) -> SqlStorageValue {
    // Ids and milliseconds stay far below 2^53.
    SqlStorageValue::Integer(n as i64)
}

impl SqlLog {
    pub fn open(sql: SqlStorage) -> Result<SqlLog, LogError> {
        let tables = rows(
            sql.exec(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('events', 'meta', 'keys')",
                None,
            )
            .map_err(fail)?,
        )?;
        let has = |table: &str| {
            tables
                .iter()
                .any(|r| matches!(r.first(), Some(SqlStorageValue::String(n)) if n == table))
        };
        let created = has("events") && has("meta");
        let mut log = SqlLog {
            sql,
            created,
            keyed: has("keys"),
            high_water: EventId(0),
            durable_high_water: EventId(0),
            newest: EventId(0),
            oldest: None,
            len: 0,
        };
        if created {
            let stored = rows(
                log.sql
                    .exec(
                        "SELECT value FROM meta WHERE key = ?",
                        vec![SqlStorageValue::String(HIGH_WATER_KEY.into())],
                    )
                    .map_err(fail)?,
            )?;
            log.refresh_summary()?;
            log.durable_high_water = EventId(
                stored
                    .first()
                    .and_then(|r| r.first())
                    .and_then(integer)
                    .unwrap_or(0),
            );
            log.high_water = log.durable_high_water.max(log.newest);
        }
        Ok(log)
    }

    fn create(&mut self) -> Result<(), LogError> {
        if !self.created {
            self.sql.exec(SCHEMA, None).map_err(fail)?;
            self.created = true;
        }
        Ok(())
    }

    fn write_high_water(&mut self, id: EventId) -> Result<(), LogError> {
        self.sql
            .exec(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                vec![SqlStorageValue::String(HIGH_WATER_KEY.into()), int_arg(id.0)],
            )
            .map_err(fail)?;
        self.high_water = id;
        self.durable_high_water = id;
        Ok(())
    }

    /// Re-reads the length and the oldest event; returns the newest id still stored.
    fn refresh_summary(&mut self) -> Result<Option<EventId>, LogError> {
        let summary = rows(
            self.sql
                .exec("SELECT COUNT(*), MIN(id), MAX(id), (SELECT at_ms FROM events ORDER BY id LIMIT 1) FROM events", None)
                .map_err(fail)?,
        )?;
        let row = summary
            .first()
            .ok_or_else(|| LogError("no summary row".into()))?;
        self.len = row.first().and_then(integer).unwrap_or(0);
        self.oldest = match (row.get(1).and_then(integer), row.get(3).and_then(integer)) {
            (Some(id), Some(at)) => Some((EventId(id), at)),
            _ => None,
        };
        let newest = row.get(2).and_then(integer).map(EventId);
        if let Some(newest) = newest {
            self.newest = self.newest.max(newest);
        }
        Ok(newest)
    }
}

impl EventLog for SqlLog {
    fn high_water(&self) -> EventId {
        self.high_water
    }

    fn oldest(&self) -> Option<(EventId, u64)> {
        self.oldest
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn append(&mut self, events: &[StoredEvent]) -> Result<(), LogError> {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(());
        };
        self.create()?;
        // One statement, so a batch is stored whole or not at all (the runtime's
        // statements are atomic one by one; a batch travels as a JSON array of rows).
        if let [event] = events {
            self.sql
                .exec(
                    "INSERT INTO events (id, at_ms, frame) VALUES (?, ?, ?)",
                    vec![
                        int_arg(event.id.0),
                        int_arg(event.at_ms),
                        SqlStorageValue::String(event.frame.clone()),
                    ],
                )
                .map_err(fail)?;
        } else {
            let rows: Vec<(u64, u64, &str)> = events
                .iter()
                .map(|e| (e.id.0, e.at_ms, e.frame.as_str()))
                .collect();
            let rows = serde_json::to_string(&rows).map_err(|e| LogError(e.to_string()))?;
            self.sql
                .exec(
                    "INSERT INTO events (id, at_ms, frame) SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?)",
                    vec![SqlStorageValue::String(rows)],
                )
                .map_err(fail)?;
        }
        for event in events
            .iter()
            .filter(|e| e.key.is_some() || e.route.is_some())
        {
            if !self.keyed {
                self.sql.exec(KEYS_SCHEMA, None).map_err(fail)?;
                self.keyed = true;
            }
            self.sql
                .exec(
                    "INSERT INTO keys (id, key, route) VALUES (?, ?, ?)",
                    vec![
                        int_arg(event.id.0),
                        text_arg(&event.key),
                        text_arg(&event.route),
                    ],
                )
                .map_err(fail)?;
        }
        // The stored events carry the mark now; `meta` is written only when they no
        // longer will (see `prune`), or by a reservation.
        self.high_water = self.high_water.max(last.id);
        self.newest = self.newest.max(last.id);
        self.len += events.len() as u64;
        self.oldest.get_or_insert((first.id, first.at_ms));
        Ok(())
    }

    fn reserve(&mut self, through: EventId) -> Result<(), LogError> {
        self.create()?;
        self.write_high_water(through.max(self.newest))
    }

    fn after(&self, after: EventId) -> Result<Vec<StoredEvent>, LogError> {
        if !self.created {
            return Ok(Vec::new());
        }
        let query = if self.keyed {
            "SELECT e.id, e.at_ms, e.frame, k.key, k.route FROM events e LEFT JOIN keys k ON k.id = e.id WHERE e.id > ? ORDER BY e.id"
        } else {
            "SELECT id, at_ms, frame, NULL, NULL FROM events WHERE id > ? ORDER BY id"
        };
        let found = rows(self.sql.exec(query, vec![int_arg(after.0)]).map_err(fail)?)?;
        Ok(found
            .into_iter()
            .filter_map(|row| match row.as_slice() {
                [id, at, SqlStorageValue::String(frame), key, route] => Some(StoredEvent {
                    id: EventId(integer(id)?),
                    at_ms: integer(at)?,
                    frame: frame.clone(),
                    key: text(key),
                    route: text(route),
                }),
                _ => None,
            })
            .collect())
    }

    fn find(&self, key: &str) -> Result<Option<EventId>, LogError> {
        if !self.keyed {
            return Ok(None);
        }
        let found = rows(
            self.sql
                .exec(
                    "SELECT k.id FROM keys k JOIN events e ON e.id = k.id WHERE k.key = ? ORDER BY k.id LIMIT 1",
                    vec![SqlStorageValue::String(key.to_string())],
                )
                .map_err(fail)?,
        )?;
        Ok(found
            .first()
            .and_then(|r| r.first())
            .and_then(integer)
            .map(EventId))
    }

    fn prune(&mut self, oldest: u64, before_ms: u64) -> Result<(), LogError> {
        if !self.created {
            return Ok(());
        }
        self.sql
            .exec(
                "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?) OR at_ms < ?",
                vec![int_arg(oldest), int_arg(before_ms)],
            )
            .map_err(fail)?;
        if self.keyed {
            self.sql
                // Pruning takes the oldest events, so their keys are the lowest ids.
                .exec(
                    "DELETE FROM keys WHERE id < COALESCE((SELECT MIN(id) FROM events), 9223372036854775807)",
                    None,
                )
                .map_err(fail)?;
        }
        let kept_newest = self.refresh_summary()?.unwrap_or(EventId(0));
        // The events that carried the high-water mark are gone: keep it in `meta`.
        if kept_newest < self.high_water && self.durable_high_water < self.high_water {
            self.write_high_water(self.high_water)?;
        }
        Ok(())
    }
}
