//! A channel's history in the Durable Object's SQLite storage.

use worker::{SqlCursor, SqlStorage, SqlStorageValue};

use crate::domain::{EventId, EventLog, LogError, StoredEvent};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, frame TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// The SQL log caches its small summary (last id, oldest event, length) in memory, so
/// publishing costs one insert and, once history is full, one delete.
pub struct SqlLog {
    sql: SqlStorage,
    last_id: EventId,
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

fn int_arg(n: u64) -> SqlStorageValue {
    // Ids and milliseconds stay far below 2^53.
    SqlStorageValue::Integer(n as i64)
}

impl SqlLog {
    pub fn open(sql: SqlStorage) -> Result<SqlLog, LogError> {
        sql.exec(SCHEMA, None).map_err(fail)?;
        let mut log = SqlLog {
            sql,
            last_id: EventId(0),
            oldest: None,
            len: 0,
        };
        let stored_last = rows(
            log.sql
                .exec("SELECT value FROM meta WHERE key = 'last_id'", None)
                .map_err(fail)?,
        )?;
        log.last_id = EventId(
            stored_last
                .first()
                .and_then(|r| r.first())
                .and_then(integer)
                .unwrap_or(0),
        );
        log.refresh_summary()?;
        Ok(log)
    }

    fn refresh_summary(&mut self) -> Result<(), LogError> {
        let summary = rows(
            self.sql
                .exec("SELECT COUNT(*), MIN(id), (SELECT at_ms FROM events ORDER BY id LIMIT 1) FROM events", None)
                .map_err(fail)?,
        )?;
        let row = summary
            .first()
            .ok_or_else(|| LogError("no summary row".into()))?;
        self.len = row.first().and_then(integer).unwrap_or(0);
        self.oldest = match (row.get(1).and_then(integer), row.get(2).and_then(integer)) {
            (Some(id), Some(at)) => Some((EventId(id), at)),
            _ => None,
        };
        Ok(())
    }
}

impl EventLog for SqlLog {
    fn last_id(&self) -> EventId {
        self.last_id
    }

    fn oldest(&self) -> Option<(EventId, u64)> {
        self.oldest
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn append(&mut self, event: &StoredEvent) -> Result<(), LogError> {
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
        self.sql
            .exec(
                "INSERT INTO meta (key, value) VALUES ('last_id', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                vec![int_arg(event.id.0)],
            )
            .map_err(fail)?;
        self.last_id = self.last_id.max(event.id);
        self.len += 1;
        self.oldest.get_or_insert((event.id, event.at_ms));
        Ok(())
    }

    fn after(&self, after: EventId) -> Result<Vec<StoredEvent>, LogError> {
        let found = rows(
            self.sql
                .exec(
                    "SELECT id, at_ms, frame FROM events WHERE id > ? ORDER BY id",
                    vec![int_arg(after.0)],
                )
                .map_err(fail)?,
        )?;
        Ok(found
            .into_iter()
            .filter_map(|row| match row.as_slice() {
                [id, at, SqlStorageValue::String(frame)] => Some(StoredEvent {
                    id: EventId(integer(id)?),
                    at_ms: integer(at)?,
                    frame: frame.clone(),
                }),
                _ => None,
            })
            .collect())
    }

    fn prune(&mut self, through_id: EventId, before_ms: u64) {
        let pruned = self
            .sql
            .exec(
                "DELETE FROM events WHERE id <= ? OR at_ms < ?",
                vec![int_arg(through_id.0), int_arg(before_ms)],
            )
            .map_err(fail)
            .and_then(|_| self.refresh_summary());
        if let Err(e) = pruned {
            worker::console_error!("{e}");
        }
    }
}
