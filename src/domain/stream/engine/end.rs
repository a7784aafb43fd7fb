//! Streams that end: the root ends its stream after its last events, durably; every seat
//! gets the `end` notice (children marked so, and each of them ends its own seats), then
//! its stream closes. From then on the root answers a listener with what it missed and
//! the notice, as a finished body, or with nothing when it has everything; nodes seat no
//! one, and send listeners to the root.

use super::*;
use crate::domain::history::Ending;
use crate::domain::message::END_EVENT_TYPE;

/// A publish, or a seat below the root, on a stream that has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamEnded;

impl std::fmt::Display for StreamEnded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the channel has ended: nothing more is published on it")
    }
}

impl std::error::Error for StreamEnded {}

/// Why ending a stream failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndError {
    /// It had ended already.
    Ended(StreamEnded),
    /// Its last events, or its ending, could not be stored: nothing changed.
    Log(LogError),
}

impl From<LogError> for EndError {
    fn from(e: LogError) -> Self {
        EndError::Log(e)
    }
}

/// What a listener of a stream that ended gets: what it missed, then the `end` notice, as
/// one finished body; or nothing, when it has everything (an `EventSource` told so with
/// `204 No Content` stops reconnecting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finale {
    pub body: Option<String>,
}

impl<O: Outlet, L: EventLog, F: Filter> Stream<O, L, F> {
    /// How the stream ended, on the root; `None` while it goes on (and below the root).
    pub fn ending(&self) -> Option<Ending> {
        self.ending
    }

    /// On the root, when the newest event was published (none: never).
    pub fn last_publish_ms(&self) -> Option<u64> {
        match self.origin {
            Origin::Root => self.log.newest_at(),
            Origin::Relayed(_) => None,
        }
    }

    /// Whether the stream has ended, as far as this object knows.
    pub fn has_ended(&self) -> bool {
        self.ending.is_some() || self.ended_above
    }

    /// Refuses a publish on a stream that has ended.
    pub fn check_publishable(&self) -> Result<(), StreamEnded> {
        match self.has_ended() {
            true => Err(StreamEnded),
            false => Ok(()),
        }
    }

    /// Ends the stream, on the root: publishes `last` (none, one or a batch) and stores
    /// everything published so far, then the ending, so that nothing published before it
    /// comes after it; every seat gets the `end` notice and its stream closes. On an
    /// error nothing ended.
    pub fn end(&mut self, last: &[Message], now_ms: u64) -> Result<PublishedBatch, EndError> {
        debug_assert_eq!(self.origin, Origin::Root, "only the root ends a stream");
        self.check_publishable().map_err(EndError::Ended)?;
        let published = self.publish_batch(last, now_ms)?;
        // What was accepted but not stored yet is stored (and sent) before the ending.
        self.flush();
        if let Some(e) = self.store_error.take() {
            return Err(EndError::Log(e));
        }
        let ending = Ending {
            last_id: self.last_id,
            at_ms: now_ms,
        };
        self.log.end(ending)?;
        self.ending = Some(ending);
        self.conclude(&end_notice(ending.last_id));
        Ok(published)
    }

    /// Below the root: the stream from the parent brought the ending. What came before it
    /// has gone out; every seat gets the notice, and its stream closes.
    pub(super) fn ended_from_above(&mut self, notice: &str) {
        self.flush();
        self.ended_above = true;
        self.conclude(notice);
    }

    /// Below the root: the parent says the stream has ended, without the notice (this node
    /// asked for its stream after the end). Its seats' streams close without it: their
    /// clients come back and are sent to the root, which answers each with what it missed.
    pub fn ended_elsewhere(&mut self) {
        self.ended_above = true;
        self.end_streams();
    }

    /// Writes the `end` notice to every seat (marked as the last frame for children) and
    /// closes every stream after it.
    fn conclude(&mut self, notice: &str) {
        let fanout = self.announcer.announce(&O::chunk(notice), 0);
        self.counters.record(fanout);
        self.relays
            .announce(&O::chunk(&protocol::ending(notice)), 0);
        self.announcer.close_where(|_| true);
        self.relays.close_where(|_| true);
    }

    /// What a seat asking to start on a stream that has ended gets instead: on the root, a
    /// listener gets its [`Finale`] (from the start of the kept history when it does not
    /// resume); a child, or anyone below the root, is refused. Checked when a seat is made,
    /// and by the platform before it opens anything for one.
    pub fn refuse_ended(
        &mut self,
        seat: &SeatKind<F>,
        last_seen: Option<EventId>,
        now_ms: u64,
    ) -> Result<(), SubscribeError> {
        let Some(ending) = self.ending else {
            return match self.ended_above {
                true => Err(SubscribeError::Ended),
                false => Ok(()),
            };
        };
        if matches!(seat, SeatKind::Relay(_)) {
            return Err(SubscribeError::Ended);
        }
        // Only a listener that says it has everything gets nothing: one that does not
        // resume gets the notice, even when there was nothing before it.
        if last_seen.is_some_and(|seen| seen >= ending.last_id) {
            return Err(SubscribeError::Finished(Finale { body: None }));
        }
        let after = last_seen.unwrap_or(EventId(0));
        let mut body = protocol::retry(self.settings.retry_ms);
        body.push_str(&self.replay_text(after, seat, now_ms)?);
        body.push_str(&end_notice(ending.last_id));
        Err(SubscribeError::Finished(Finale { body: Some(body) }))
    }
}

/// The `end` notice: the stream's last id as its id (a client that reconnects after it
/// says it has everything) and in its data.
fn end_notice(last_id: EventId) -> String {
    let data = json!({ "lastEventId": last_id.to_string() });
    protocol::Event::new(data.to_string())
        .with_type(END_EVENT_TYPE)
        .and_then(|e| e.with_id(last_id.to_string()))
        .expect("the end notice's type and id are valid")
        .encode()
}
