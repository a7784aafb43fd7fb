//! What an object counts across its instances, kept in one row of its storage beside the
//! history: how many times it started to do work (a stream's `starts`), and, when it may
//! sleep between events, what it published, delivered and dropped, so that a fresh
//! instance's stats go on from there instead of from zero.

use worker::{SqlStorage, SqlStorageValue};

use super::sql_log::{fail, int_arg, integer, rows};
use crate::domain::{Counters, LogError};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS object_counts (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    starts INTEGER NOT NULL DEFAULT 0,
    published INTEGER NOT NULL DEFAULT 0,
    delivered INTEGER NOT NULL DEFAULT 0,
    dropped_slow INTEGER NOT NULL DEFAULT 0,
    dropped_gone INTEGER NOT NULL DEFAULT 0
)";

/// What the row holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    pub starts: u64,
    pub counters: Counters,
}

/// The row, when there is one. A read only: an object opened to answer a read of a
/// stream never used writes nothing.
pub fn read(sql: &SqlStorage) -> Counted {
    let query = "SELECT starts, published, delivered, dropped_slow, dropped_gone FROM object_counts WHERE id = 0";
    let Ok(cursor) = sql.exec(query, None) else {
        return Counted::default(); // no table: nothing counted yet
    };
    let row = rows(cursor).ok().and_then(|rows| rows.into_iter().next());
    let Some(row) = row else {
        return Counted::default();
    };
    let number = |i: usize| row.get(i).and_then(integer).unwrap_or(0);
    Counted {
        starts: number(0),
        counters: Counters {
            published: number(1),
            delivered: number(2),
            dropped_slow: number(3),
            dropped_gone: number(4),
        },
    }
}

/// Counts one more start and returns the count.
pub fn count_start(sql: &SqlStorage) -> Result<u64, LogError> {
    sql.exec(SCHEMA, None).map_err(fail)?;
    let counted = rows(
        sql.exec(
            "INSERT INTO object_counts (id, starts) VALUES (0, 1) ON CONFLICT(id) DO UPDATE SET starts = starts + 1 RETURNING starts",
            None,
        )
        .map_err(fail)?,
    )?;
    Ok(counted
        .first()
        .and_then(|r| r.first())
        .and_then(integer)
        .unwrap_or(1))
}

/// Keeps what the object counted (one row written; the row exists once a start was
/// counted, which comes before anything is).
pub fn keep(sql: &SqlStorage, counters: &Counters) -> Result<(), LogError> {
    let values: Vec<SqlStorageValue> = [
        counters.published,
        counters.delivered,
        counters.dropped_slow,
        counters.dropped_gone,
    ]
    .into_iter()
    .map(int_arg)
    .collect();
    sql.exec(
        "UPDATE object_counts SET published = ?, delivered = ?, dropped_slow = ?, dropped_gone = ? WHERE id = 0",
        Some(values),
    )
    .map_err(fail)?;
    Ok(())
}

/// Drops the row and its table: an object of a stream that ended keeps nothing.
pub fn forget(sql: &SqlStorage) -> Result<(), LogError> {
    sql.exec("DROP TABLE IF EXISTS object_counts", None)
        .map_err(fail)?;
    Ok(())
}
