//! What a stream's object has done since it started: published, delivered, dropped.

use crate::domain::announcer::Fanout;

/// What a channel has done since its object started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub published: u64,
    /// Events written to listeners (an event written to three listeners counts three).
    pub delivered: u64,
    /// Listeners cut because their queue was full.
    pub dropped_slow: u64,
    /// Listeners whose client vanished or stopped reading.
    pub dropped_gone: u64,
}

impl Counters {
    /// Adds what `other` delivered and dropped (what a node below counted).
    pub fn add_deliveries(&mut self, other: &Counters) {
        self.delivered += other.delivered;
        self.dropped_slow += other.dropped_slow;
        self.dropped_gone += other.dropped_gone;
    }

    /// Counts what one fan-out did.
    pub(crate) fn record(&mut self, fanout: Fanout) {
        self.delivered += fanout.events;
        self.dropped_slow += fanout.slow as u64;
        self.dropped_gone += fanout.gone as u64;
    }

    pub(crate) fn record_gone(&mut self, gone: usize) {
        self.dropped_gone += gone as u64;
    }
}
