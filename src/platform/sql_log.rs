//! A channel's history in the Durable Object's SQLite storage.
//!
//! The tables are created by the first write, never by a read: an object that is only
//! asked for its stats (or listened to) writes nothing.

use std::collections::VecDeque;

use worker::{SqlCursor, SqlStorage, SqlStorageValue};

use crate::domain::{Ending, EventId, EventLog, LogError, StoredEvent};

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
/// The `meta` rows of an ended stream: its last id, and when it ended.
const ENDED_KEY: &str = "ended";
const ENDED_AT_KEY: &str = "ended_at";
/// The `meta` row that keeps when the newest event was published, once no event is kept.
const NEWEST_AT_KEY: &str = "newest_at";

/// Events pruned from the history stay in the table until this many have gone (or all
/// of them): their rows are deleted together, one statement for many publishes, and
/// until then nothing reads them (every read starts above [`SqlLog::dead_through`]).
const DEAD_ROWS: u64 = 64;
/// How many of the oldest kept events' ids and times are held in memory, so that pruning
/// one needs no read (refilled by one read when used up).
const FRONT: usize = 64;

/// The SQL log caches its small summary (high-water mark, newest and oldest events,
/// length) in memory, so publishing costs one insert, and, once history is full, one
/// delete per [`DEAD_ROWS`] publishes.
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
    /// The oldest kept events (id, time), in order: the first `min(len, FRONT)`, or fewer
    /// until they are read again ([`SqlLog::refill_front`]); never empty while `len > 0`.
    front: VecDeque<(EventId, u64)>,
    /// Kept events.
    len: u64,
    /// Every stored event up to this id is pruned (its row may still be in the table).
    dead_through: EventId,
    /// Pruned events whose rows are still in the table.
    dead_rows: u64,
    ending: Option<Ending>,
    /// When the newest stored event was published, and whether `meta` holds it (it must
    /// once no event is kept).
    newest_at: Option<u64>,
    durable_newest_at: bool,
}

pub(super) fn fail(e: worker::Error) -> LogError {
    LogError(e.to_string())
}

pub(super) fn integer(value: &SqlStorageValue) -> Option<u64> {
    match value {
        SqlStorageValue::Integer(i) => u64::try_from(*i).ok(),
        SqlStorageValue::Float(f) if *f >= 0.0 && f.fract() == 0.0 => Some(*f as u64),
        _ => None,
    }
}

pub(super) fn rows(cursor: SqlCursor) -> Result<Vec<Vec<SqlStorageValue>>, LogError> {
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

pub(super) fn int_arg(n: u64) -> SqlStorageValue {
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
            front: VecDeque::new(),
            len: 0,
            dead_through: EventId(0),
            dead_rows: 0,
            ending: None,
            newest_at: None,
            durable_newest_at: false,
        };
        if created {
            let stored = rows(
                log.sql
                    .exec(
                        "SELECT key, value FROM meta WHERE key IN (?, ?, ?, ?)",
                        vec![
                            SqlStorageValue::String(HIGH_WATER_KEY.into()),
                            SqlStorageValue::String(ENDED_KEY.into()),
                            SqlStorageValue::String(ENDED_AT_KEY.into()),
                            SqlStorageValue::String(NEWEST_AT_KEY.into()),
                        ],
                    )
                    .map_err(fail)?,
            )?;
            let meta = |key: &str| {
                stored.iter().find_map(|row| match row.as_slice() {
                    [SqlStorageValue::String(k), value] if k == key => integer(value),
                    _ => None,
                })
            };
            log.refresh_summary()?;
            log.refill_front()?;
            log.durable_high_water = EventId(meta(HIGH_WATER_KEY).unwrap_or(0));
            let stored_newest_at = meta(NEWEST_AT_KEY);
            log.durable_newest_at = stored_newest_at.is_some();
            log.newest_at = log.newest_at.or(stored_newest_at);
            log.ending = meta(ENDED_KEY).map(|last| Ending {
                last_id: EventId(last),
                at_ms: meta(ENDED_AT_KEY).unwrap_or(0),
            });
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

    fn write_meta(&mut self, key: &str, value: u64) -> Result<(), LogError> {
        self.sql
            .exec(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                vec![SqlStorageValue::String(key.into()), int_arg(value)],
            )
            .map_err(fail)?;
        Ok(())
    }

    fn write_high_water(&mut self, id: EventId) -> Result<(), LogError> {
        self.write_meta(HIGH_WATER_KEY, id.0)?;
        self.high_water = id;
        self.durable_high_water = id;
        Ok(())
    }

    /// Reads the length and the newest id of what is stored (once, on opening).
    fn refresh_summary(&mut self) -> Result<(), LogError> {
        let summary = rows(
            self.sql
                .exec(
                    "SELECT COUNT(*), MAX(id), (SELECT at_ms FROM events ORDER BY id DESC LIMIT 1) FROM events",
                    None,
                )
                .map_err(fail)?,
        )?;
        let row = summary
            .first()
            .ok_or_else(|| LogError("no summary row".into()))?;
        self.len = row.first().and_then(integer).unwrap_or(0);
        if let Some(newest) = row.get(1).and_then(integer).map(EventId) {
            self.newest = self.newest.max(newest);
        }
        self.newest_at = row.get(2).and_then(integer);
        Ok(())
    }

    /// Reads the ids and times of the oldest kept events not in `front` yet (one read
    /// per [`FRONT`] events pruned).
    fn refill_front(&mut self) -> Result<(), LogError> {
        let known = self.front.len() as u64;
        if known >= self.len || self.front.len() >= FRONT {
            return Ok(());
        }
        let after = self.front.back().map_or(self.dead_through, |(id, _)| *id);
        let found = rows(
            self.sql
                .exec(
                    "SELECT id, at_ms FROM events WHERE id > ? ORDER BY id LIMIT ?",
                    vec![int_arg(after.0), int_arg((FRONT - self.front.len()) as u64)],
                )
                .map_err(fail)?,
        )?;
        for row in found {
            if let (Some(id), Some(at)) =
                (row.first().and_then(integer), row.get(1).and_then(integer))
            {
                self.front.push_back((EventId(id), at));
            }
        }
        if self.front.is_empty() {
            // The count said there were events, and there are none: trust the table.
            self.len = 0;
        }
        Ok(())
    }

    /// Deletes the rows of pruned events, and their keys.
    fn delete_dead_rows(&mut self) -> Result<(), LogError> {
        if self.dead_rows == 0 {
            return Ok(());
        }
        self.sql
            .exec(
                "DELETE FROM events WHERE id <= ?",
                vec![int_arg(self.dead_through.0)],
            )
            .map_err(fail)?;
        if self.keyed {
            self.sql
                .exec(
                    "DELETE FROM keys WHERE id <= ?",
                    vec![int_arg(self.dead_through.0)],
                )
                .map_err(fail)?;
        }
        self.dead_rows = 0;
        Ok(())
    }
}

impl EventLog for SqlLog {
    fn high_water(&self) -> EventId {
        self.high_water
    }

    fn oldest(&self) -> Option<(EventId, u64)> {
        self.front.front().copied()
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn append(&mut self, events: &[StoredEvent]) -> Result<(), LogError> {
        let Some(last) = events.last() else {
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
        self.newest_at = Some(last.at_ms);
        self.durable_newest_at = false;
        if self.front.len() as u64 == self.len {
            // `front` holds every kept event: the new ones are next.
            let room = FRONT.saturating_sub(self.front.len());
            self.front
                .extend(events.iter().take(room).map(|e| (e.id, e.at_ms)));
        }
        self.len += events.len() as u64;
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
        // Pruned events whose rows are still there are not history.
        let after = after.max(self.dead_through);
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
                    "SELECT k.id FROM keys k JOIN events e ON e.id = k.id WHERE k.key = ? AND k.id > ? ORDER BY k.id LIMIT 1",
                    vec![
                        SqlStorageValue::String(key.to_string()),
                        int_arg(self.dead_through.0),
                    ],
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
        // Events are stored in id order with non-decreasing times, so what goes is the
        // oldest events: the `oldest` first, and then any that are expired. They are
        // pruned here, in memory; their rows go once there are enough of them, or at once
        // when nothing is kept (below).
        let mut pruned = 0;
        while self.len > 0 {
            if self.front.is_empty() {
                self.refill_front()?;
            }
            let Some(&(id, at_ms)) = self.front.front() else {
                break;
            };
            if pruned >= oldest && at_ms >= before_ms {
                break;
            }
            self.front.pop_front();
            self.len -= 1;
            self.dead_through = id;
            self.dead_rows += 1;
            pruned += 1;
        }
        if self.len > 0 && self.front.is_empty() {
            self.refill_front()?;
        }
        if self.dead_rows >= DEAD_ROWS || self.len == 0 {
            self.delete_dead_rows()?;
        }
        // Nothing kept: the events that carried the high-water mark are gone, so `meta`
        // keeps it (their rows were deleted just above).
        let kept_newest = if self.len == 0 {
            EventId(0)
        } else {
            self.newest
        };
        if kept_newest < self.high_water && self.durable_high_water < self.high_water {
            self.write_high_water(self.high_water)?;
        }
        // The same for when the newest event was published.
        if let (0, Some(at), false) = (self.len, self.newest_at, self.durable_newest_at) {
            self.write_meta(NEWEST_AT_KEY, at)?;
            self.durable_newest_at = true;
        }
        Ok(())
    }

    fn newest_at(&self) -> Option<u64> {
        self.newest_at
    }

    fn ending(&self) -> Option<Ending> {
        self.ending
    }

    fn end(&mut self, ending: Ending) -> Result<(), LogError> {
        self.create()?;
        // Written in the same step as the stream's last events (no await between them),
        // so the runtime commits them together.
        self.write_meta(ENDED_AT_KEY, ending.at_ms)?;
        self.write_meta(ENDED_KEY, ending.last_id.0)?;
        self.ending = Some(ending);
        Ok(())
    }
}
