//! Event ids, the history a channel keeps for resuming, and how a resume is planned.
//!
//! Ids are consecutive integers per channel, starting at 1 and never reused (the last id
//! is stored with the history, so it survives restarts even when the history is empty).
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

impl fmt::Display for BadEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("last event id must be a decimal event id as sent by this service")
    }
}

/// One kept event: its id, when it was published, and its encoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: EventId,
    pub at_ms: u64,
    pub frame: String,
}

/// Storage failed; the text says how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogError(pub String);

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "history storage failed: {}", self.0)
    }
}

/// Where a channel's events are kept between restarts.
pub trait EventLog {
    /// The largest id ever appended (0 when none): ids continue from here.
    fn last_id(&self) -> EventId;
    /// The id and publication time of the oldest event still kept.
    fn oldest(&self) -> Option<(EventId, u64)>;
    fn oldest_id(&self) -> Option<EventId> {
        self.oldest().map(|(id, _)| id)
    }
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn append(&mut self, event: &StoredEvent) -> Result<(), LogError>;
    /// Kept events with an id greater than `after`, oldest first.
    fn after(&self, after: EventId) -> Result<Vec<StoredEvent>, LogError>;
    /// Drops events with an id at most `through_id`, and events published before `before_ms`.
    fn prune(&mut self, through_id: EventId, before_ms: u64);
}

/// How much history a channel keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPolicy {
    pub max_events: u64,
    pub max_age_ms: u64,
}

impl HistoryPolicy {
    /// Drops what the policy no longer covers, given the newest id and the current time.
    pub fn apply(&self, log: &mut dyn EventLog, now_ms: u64) {
        let through_id = EventId(log.last_id().0.saturating_sub(self.max_events));
        let before_ms = now_ms.saturating_sub(self.max_age_ms);
        let needs_pruning = log.oldest().is_some_and(|(oldest_id, oldest_at_ms)| {
            oldest_id <= through_id || oldest_at_ms < before_ms
        });
        if needs_pruning {
            log.prune(through_id, before_ms);
        }
    }
}

/// What a listener who asks to resume gets before live events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePlan {
    /// Set when events the listener has not seen are no longer kept.
    pub gap: Option<Gap>,
    /// Kept events to send first, oldest first.
    pub replay: Vec<StoredEvent>,
}

/// Events were lost to the listener: the application should reload its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub last_event_id: EventId,
    /// The first id the listener will receive from history, if any is kept.
    pub first_available_id: Option<EventId>,
}

/// Plans the replay for a listener whose last seen id is `last_seen`.
pub fn plan_resume(log: &dyn EventLog, last_seen: EventId) -> Result<ResumePlan, LogError> {
    let last_id = log.last_id();
    if last_seen == last_id {
        return Ok(ResumePlan {
            gap: None,
            replay: Vec::new(),
        });
    }
    // An id from the future means this channel's storage was reset: everything kept is new.
    let from = if last_seen > last_id {
        EventId(0)
    } else {
        last_seen
    };
    let replay = log.after(from)?;
    let first_available_id = replay.first().map(|e| e.id);
    let complete = last_seen < last_id && first_available_id == Some(last_seen.next());
    Ok(ResumePlan {
        gap: (!complete).then_some(Gap {
            last_event_id: last_seen,
            first_available_id,
        }),
        replay,
    })
}

/// An in-memory [`EventLog`], for tests and for runtimes without storage.
#[derive(Debug, Default)]
pub struct MemoryLog {
    last_id: EventId,
    events: VecDeque<StoredEvent>,
}

impl EventLog for MemoryLog {
    fn last_id(&self) -> EventId {
        self.last_id
    }
    fn oldest(&self) -> Option<(EventId, u64)> {
        self.events.front().map(|e| (e.id, e.at_ms))
    }
    fn len(&self) -> u64 {
        self.events.len() as u64
    }
    fn append(&mut self, event: &StoredEvent) -> Result<(), LogError> {
        self.last_id = self.last_id.max(event.id);
        self.events.push_back(event.clone());
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
    fn prune(&mut self, through_id: EventId, before_ms: u64) {
        self.events
            .retain(|e| e.id > through_id && e.at_ms >= before_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(ids: std::ops::RangeInclusive<u64>) -> MemoryLog {
        let mut log = MemoryLog::default();
        for id in ids {
            log.append(&StoredEvent {
                id: EventId(id),
                at_ms: id * 10,
                frame: format!("id: {id}\n\n"),
            })
            .unwrap();
        }
        log
    }

    #[test]
    fn parse_ids() {
        assert_eq!(EventId::parse("42"), Ok(EventId(42)));
        assert_eq!(EventId::parse(" 0 "), Ok(EventId(0)));
        for bad in ["", "-1", "1.5", "abc", "99999999999999999999999", "1e3"] {
            assert_eq!(EventId::parse(bad), Err(BadEventId), "{bad}");
        }
    }

    #[test]
    fn resume_within_history_replays_exactly_the_missed_events() {
        let log = log_with(1..=10);
        let plan = plan_resume(&log, EventId(4)).unwrap();
        assert_eq!(plan.gap, None);
        assert_eq!(
            plan.replay.iter().map(|e| e.id.0).collect::<Vec<_>>(),
            (5..=10).collect::<Vec<_>>()
        );
        assert_eq!(
            plan_resume(&log, EventId(10)).unwrap(),
            ResumePlan {
                gap: None,
                replay: vec![]
            }
        );
        // 0 means "from the start": complete when event 1 is still kept.
        assert_eq!(plan_resume(&log, EventId(0)).unwrap().gap, None);
    }

    #[test]
    fn resume_older_than_history_reports_a_gap() {
        let mut log = log_with(1..=10);
        HistoryPolicy {
            max_events: 3,
            max_age_ms: u64::MAX,
        }
        .apply(&mut log, 1000);
        assert_eq!(log.oldest_id(), Some(EventId(8)));
        let plan = plan_resume(&log, EventId(2)).unwrap();
        assert_eq!(
            plan.gap,
            Some(Gap {
                last_event_id: EventId(2),
                first_available_id: Some(EventId(8))
            })
        );
        assert_eq!(plan.replay.len(), 3);
        // Exactly at the edge: 7 seen, 8 is the oldest kept: nothing is missing.
        assert_eq!(plan_resume(&log, EventId(7)).unwrap().gap, None);
    }

    #[test]
    fn resume_from_the_future_means_storage_was_reset() {
        let log = log_with(1..=3);
        let plan = plan_resume(&log, EventId(50)).unwrap();
        assert_eq!(
            plan.gap,
            Some(Gap {
                last_event_id: EventId(50),
                first_available_id: Some(EventId(1))
            })
        );
        assert_eq!(plan.replay.len(), 3);
    }

    #[test]
    fn empty_history_after_expiry_is_a_gap_with_nothing_available() {
        let mut log = log_with(1..=5);
        HistoryPolicy {
            max_events: 100,
            max_age_ms: 10,
        }
        .apply(&mut log, 1000);
        assert!(log.is_empty());
        assert_eq!(log.last_id(), EventId(5), "ids are never reused");
        let plan = plan_resume(&log, EventId(3)).unwrap();
        assert_eq!(
            plan.gap,
            Some(Gap {
                last_event_id: EventId(3),
                first_available_id: None
            })
        );
    }

    #[test]
    fn policy_bounds_the_log() {
        let mut log = MemoryLog::default();
        let policy = HistoryPolicy {
            max_events: 50,
            max_age_ms: 1_000_000,
        };
        for id in 1..=1000 {
            log.append(&StoredEvent {
                id: EventId(id),
                at_ms: id,
                frame: String::new(),
            })
            .unwrap();
            policy.apply(&mut log, id);
            assert!(log.len() <= 50);
        }
        assert_eq!(log.oldest_id(), Some(EventId(951)));
    }
}
