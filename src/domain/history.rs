//! Event ids, the history a channel keeps for resuming, and how a resume is planned.
//!
//! Ids are increasing integers per channel, starting at 1 and never reused: the log keeps
//! a durable high-water mark (the largest id stored or reserved), so ids survive restarts
//! even when the history is empty, and even when events handed an id were lost.
//! The log itself is a trait: the platform keeps it in the Durable Object's SQLite
//! storage, tests keep it in memory.

use std::collections::VecDeque;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId(pub u64);

impl EventId {
    /// Reads an id as a client sends it back (`Last-Event-ID`, `lastEventId`).
    pub fn parse(text: &str) -> Result<EventId, BadEventId> {
        let text = text.trim();
        if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadEventId);
        }
        text.parse().map(EventId).map_err(|_| BadEventId)
    }

    pub fn next(self) -> EventId {
        EventId(self.0 + 1)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadEventId;

impl std::error::Error for BadEventId {}

impl fmt::Display for BadEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("last event id must be a decimal event id as sent by this service")
    }
}

/// One kept event: its id, when it was published, and its encoded frame; and, on a
/// filtering host such as the Mercure hub, the id clients know it by (`key`) and what
/// decides who receives it (`route`, opaque to the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: EventId,
    pub at_ms: u64,
    pub frame: String,
    pub key: Option<String>,
    pub route: Option<String>,
}

impl StoredEvent {
    /// A channel's event: known by its id alone, for everyone.
    pub fn new(id: EventId, at_ms: u64, frame: String) -> Self {
        StoredEvent {
            id,
            at_ms,
            frame,
            key: None,
            route: None,
        }
    }
}

/// A stream that ended: its last id, and when it ended. Kept like an event, so that it
/// survives restarts and nothing published before it comes after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    pub last_id: EventId,
    pub at_ms: u64,
}

/// Storage failed; the text says how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogError(pub String);

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "history storage failed: {}", self.0)
    }
}

impl std::error::Error for LogError {}

/// Where a channel's events are kept between restarts.
pub trait EventLog {
    /// The largest id stored or reserved (0 when none): new ids continue after it, so no
    /// id is given twice, even when events handed an id before a crash were never stored.
    fn high_water(&self) -> EventId;
    /// The id and publication time of the oldest event still kept.
    fn oldest(&self) -> Option<(EventId, u64)>;
    fn oldest_id(&self) -> Option<EventId> {
        self.oldest().map(|(id, _)| id)
    }
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Stores events whose ids are above every id stored so far, in order, and raises the
    /// high-water mark to the last of them.
    fn append(&mut self, events: &[StoredEvent]) -> Result<(), LogError>;
    /// Sets the high-water mark to `through` (never below the newest stored id), durably:
    /// ids up to it may be handed out before their events are stored.
    fn reserve(&mut self, through: EventId) -> Result<(), LogError>;
    /// Kept events with an id greater than `after`, oldest first.
    fn after(&self, after: EventId) -> Result<Vec<StoredEvent>, LogError>;
    /// The id of the oldest kept event whose key is `key`.
    fn find(&self, key: &str) -> Result<Option<EventId>, LogError>;
    /// Drops the `oldest` oldest events, and every event published before `before_ms`.
    fn prune(&mut self, oldest: u64, before_ms: u64) -> Result<(), LogError>;
    /// When the newest event stored was published, remembered after it is no longer kept
    /// (none: nothing was ever stored).
    fn newest_at(&self) -> Option<u64>;
    /// How the stream ended, if it did.
    fn ending(&self) -> Option<Ending>;
    /// Marks the stream ended, durably: nothing is appended after.
    fn end(&mut self, ending: Ending) -> Result<(), LogError>;
}

/// A log chosen at run time (a channel's root keeps its history durably, the nodes of
/// its tree keep recent events in memory).
impl<T: EventLog + ?Sized> EventLog for Box<T> {
    fn high_water(&self) -> EventId {
        (**self).high_water()
    }
    fn oldest(&self) -> Option<(EventId, u64)> {
        (**self).oldest()
    }
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn append(&mut self, events: &[StoredEvent]) -> Result<(), LogError> {
        (**self).append(events)
    }
    fn reserve(&mut self, through: EventId) -> Result<(), LogError> {
        (**self).reserve(through)
    }
    fn after(&self, after: EventId) -> Result<Vec<StoredEvent>, LogError> {
        (**self).after(after)
    }
    fn find(&self, key: &str) -> Result<Option<EventId>, LogError> {
        (**self).find(key)
    }
    fn prune(&mut self, oldest: u64, before_ms: u64) -> Result<(), LogError> {
        (**self).prune(oldest, before_ms)
    }
    fn newest_at(&self) -> Option<u64> {
        (**self).newest_at()
    }
    fn ending(&self) -> Option<Ending> {
        (**self).ending()
    }
    fn end(&mut self, ending: Ending) -> Result<(), LogError> {
        (**self).end(ending)
    }
}

/// How much history a channel keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPolicy {
    pub max_events: u64,
    pub max_age_ms: u64,
}

impl HistoryPolicy {
    /// Drops what the policy no longer covers at `now_ms`.
    pub fn apply(&self, log: &mut dyn EventLog, now_ms: u64) -> Result<(), LogError> {
        let excess = log.len().saturating_sub(self.max_events);
        let before_ms = now_ms.saturating_sub(self.max_age_ms);
        let expired = log
            .oldest()
            .is_some_and(|(_, oldest_at_ms)| oldest_at_ms < before_ms);
        if excess > 0 || expired {
            log.prune(excess, before_ms)?;
        }
        Ok(())
    }
}

/// What a listener who asks to resume gets before live events, in order: the kept
/// events it missed, with a gap notice wherever some it missed are no longer there.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResumePlan {
    pub steps: Vec<Replay>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Events the listener has not seen are missing here.
    Gap(Gap),
    Event(StoredEvent),
}

impl ResumePlan {
    pub fn gaps(&self) -> Vec<&Gap> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Replay::Gap(g) => Some(g),
                Replay::Event(_) => None,
            })
            .collect()
    }

    pub fn events(&self) -> Vec<&StoredEvent> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Replay::Event(e) => Some(e),
                Replay::Gap(_) => None,
            })
            .collect()
    }
}

/// Events were lost to the listener: the application should reload its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The last id the listener has before the hole.
    pub last_event_id: EventId,
    /// The first id it receives after the hole, if any is kept.
    pub first_available_id: Option<EventId>,
}

/// Plans the replay for a listener whose last seen id is `last_seen`, on a channel whose
/// last id given out is `last_id`. Every id from `last_seen` to `last_id` that is not in
/// the log (expired, pruned, or handed out and lost before it was stored) makes a gap,
/// placed where the hole is.
pub fn plan_resume(
    log: &dyn EventLog,
    last_seen: EventId,
    last_id: EventId,
) -> Result<ResumePlan, LogError> {
    let mut plan = ResumePlan::default();
    if last_seen == last_id {
        return Ok(plan);
    }
    // An id from the future means this channel's storage was reset: everything kept is
    // new to the listener, and it cannot know what it missed.
    let reset = last_seen > last_id;
    let kept = log.after(if reset { EventId(0) } else { last_seen })?;
    if reset {
        plan.steps.push(Replay::Gap(Gap {
            last_event_id: last_seen,
            first_available_id: kept.first().map(|e| e.id),
        }));
    }
    let mut seen = if reset { None } else { Some(last_seen) };
    for event in kept {
        if let Some(seen) = seen.filter(|seen| event.id != seen.next()) {
            plan.steps.push(Replay::Gap(Gap {
                last_event_id: seen,
                first_available_id: Some(event.id),
            }));
        }
        seen = Some(event.id);
        plan.steps.push(Replay::Event(event));
    }
    if let Some(seen) = seen.filter(|seen| *seen < last_id) {
        plan.steps.push(Replay::Gap(Gap {
            last_event_id: seen,
            first_available_id: None,
        }));
    }
    Ok(plan)
}

/// An in-memory [`EventLog`], for tests and for runtimes without storage.
#[derive(Debug, Default, Clone)]
pub struct MemoryLog {
    high_water: EventId,
    events: VecDeque<StoredEvent>,
    newest_at: Option<u64>,
    ending: Option<Ending>,
}

impl EventLog for MemoryLog {
    fn high_water(&self) -> EventId {
        self.high_water
    }
    fn oldest(&self) -> Option<(EventId, u64)> {
        self.events.front().map(|e| (e.id, e.at_ms))
    }
    fn len(&self) -> u64 {
        self.events.len() as u64
    }
    fn append(&mut self, events: &[StoredEvent]) -> Result<(), LogError> {
        for event in events {
            self.high_water = self.high_water.max(event.id);
            self.newest_at = Some(event.at_ms);
            self.events.push_back(event.clone());
        }
        Ok(())
    }
    fn reserve(&mut self, through: EventId) -> Result<(), LogError> {
        let newest = self.events.back().map_or(EventId(0), |e| e.id);
        self.high_water = through.max(newest);
        Ok(())
    }
    fn after(&self, after: EventId) -> Result<Vec<StoredEvent>, LogError> {
        Ok(self
            .events
            .iter()
            .filter(|e| e.id > after)
            .cloned()
            .collect())
    }
    fn find(&self, key: &str) -> Result<Option<EventId>, LogError> {
        Ok(self
            .events
            .iter()
            .find(|e| e.key.as_deref() == Some(key))
            .map(|e| e.id))
    }
    fn prune(&mut self, oldest: u64, before_ms: u64) -> Result<(), LogError> {
        let keep_from = (oldest as usize).min(self.events.len());
        self.events.drain(..keep_from);
        self.events.retain(|e| e.at_ms >= before_ms);
        Ok(())
    }
    fn newest_at(&self) -> Option<u64> {
        self.newest_at
    }
    fn ending(&self) -> Option<Ending> {
        self.ending
    }
    fn end(&mut self, ending: Ending) -> Result<(), LogError> {
        self.ending = Some(ending);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
