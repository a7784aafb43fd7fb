//! The `Graves` Durable Object class: what is left of channels whose storage was deleted
//! after they ended, kept for `GRAVE_SECONDS` in one table per object, so that a listen
//! or publish on such a name answers `410 Gone` (see [`super::contract::GraveCall`]).
//! Each burial also clears the graves whose time is up: the table holds only standing
//! ones.

use worker::{durable_object, DurableObject, Env, Request, Response, SqlStorage, State};

use super::contract::GraveCall;
use super::error::Error;
use super::host::now_ms;
use super::sql_log::{fail, int_arg, integer, rows};
use crate::domain::{Grave, Lifetimes};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS graves (
    channel TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL,
    ended_at INTEGER NOT NULL,
    deleted_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS graves_by_time ON graves (deleted_at);
";

#[durable_object]
pub struct Graves {
    state: State,
    env: Env,
}

impl Graves {
    fn serve(&self, call: GraveCall) -> Result<Response, Error> {
        let lifetimes = super::read_config(&self.env)?.lifetimes;
        let sql = self.state.storage().sql();
        let now = now_ms();
        match call {
            GraveCall::Bury { channel, grave } => {
                bury(&sql, channel.as_str(), &grave, &lifetimes, now)?;
                Ok(Response::empty()?.with_status(204))
            }
            GraveCall::Find(channel) => match find(&sql, channel.as_str())? {
                Some(grave) if grave.stands(&lifetimes, now) => {
                    super::http::json(&serde_json::to_value(grave).expect("a grave is JSON"))
                }
                _ => Ok(Response::empty()?.with_status(404)),
            },
        }
    }
}

fn bury(
    sql: &SqlStorage,
    channel: &str,
    grave: &Grave,
    lifetimes: &Lifetimes,
    now: u64,
) -> Result<(), Error> {
    sql.exec(SCHEMA, None).map_err(fail)?;
    sql.exec(
        "INSERT INTO graves (channel, last_id, ended_at, deleted_at) VALUES (?, ?, ?, ?) ON CONFLICT(channel) DO UPDATE SET last_id = excluded.last_id, ended_at = excluded.ended_at, deleted_at = excluded.deleted_at",
        vec![
            channel.into(),
            int_arg(grave.last_id),
            int_arg(grave.ended_at_ms),
            int_arg(grave.deleted_at_ms),
        ],
    )
    .map_err(fail)?;
    let expired_before = now.saturating_sub(lifetimes.grave_ms);
    sql.exec(
        "DELETE FROM graves WHERE deleted_at < ?",
        vec![int_arg(expired_before)],
    )
    .map_err(fail)?;
    Ok(())
}

fn find(sql: &SqlStorage, channel: &str) -> Result<Option<Grave>, Error> {
    // No table: nothing was ever buried here (a read creates nothing). Any other failure
    // is one: the caller must not take it for "no grave".
    let tables = rows(
        sql.exec(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'graves'",
            None,
        )
        .map_err(fail)?,
    )?;
    if tables.is_empty() {
        return Ok(None);
    }
    let found = rows(
        sql.exec(
            "SELECT last_id, ended_at, deleted_at FROM graves WHERE channel = ?",
            vec![channel.into()],
        )
        .map_err(fail)?,
    )?;
    Ok(found.first().and_then(|row| {
        Some(Grave {
            last_id: integer(row.first()?)?,
            ended_at_ms: integer(row.get(1)?)?,
            deleted_at_ms: integer(row.get(2)?)?,
        })
    }))
}

impl DurableObject for Graves {
    fn new(state: State, env: Env) -> Self {
        Graves { state, env }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let served = match GraveCall::read(&mut req).await {
            Ok(call) => self.serve(call),
            Err(e) => Err(e),
        };
        served.or_else(|e| e.to_response())
    }
}
