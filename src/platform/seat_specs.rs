//! The specs of seats on sockets too big for their socket's note (a hub subscriber with
//! many matchers or a large token): kept in the object's storage under the seat's id
//! while the seat lasts, so that a fresh instance seats it again all the same.

use worker::{SqlStorage, SqlStorageValue};

use super::sql_log::{fail, int_arg, rows};
use crate::domain::LogError;

const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS seat_specs (seat INTEGER PRIMARY KEY, spec TEXT NOT NULL)";

/// Keeps `spec` (JSON) for `seat`.
pub fn put(sql: &SqlStorage, seat: u64, spec: &str) -> Result<(), LogError> {
    sql.exec(SCHEMA, None).map_err(fail)?;
    let values = vec![int_arg(seat), SqlStorageValue::String(spec.into())];
    sql.exec(
        "INSERT OR REPLACE INTO seat_specs (seat, spec) VALUES (?, ?)",
        Some(values),
    )
    .map_err(fail)?;
    Ok(())
}

/// The spec kept for `seat`, if any.
pub fn get(sql: &SqlStorage, seat: u64) -> Option<String> {
    let cursor = sql
        .exec(
            "SELECT spec FROM seat_specs WHERE seat = ?",
            Some(vec![int_arg(seat)]),
        )
        .ok()?;
    let row = rows(cursor).ok()?.into_iter().next()?;
    match row.into_iter().next()? {
        SqlStorageValue::String(spec) => Some(spec),
        _ => None,
    }
}

/// Lets go the specs of seats not in `seats` (gone while nobody asked to let them go).
pub fn keep_only(sql: &SqlStorage, seats: &[u64]) {
    let list: Vec<String> = seats.iter().map(u64::to_string).collect();
    // Ids are numbers this object made: nothing to quote.
    let delete = format!(
        "DELETE FROM seat_specs WHERE seat NOT IN ({})",
        list.join(",")
    );
    let _ = sql.exec(&delete, None); // no table: nothing was kept
}

/// Lets go the spec of `seat`.
pub fn forget(sql: &SqlStorage, seat: u64) {
    let _ = sql.exec(
        "DELETE FROM seat_specs WHERE seat = ?",
        Some(vec![int_arg(seat)]),
    );
}
