//! What an object counts across its instances ([`object_counts`]): each start that does
//! work, and, when the object may sleep, what it published and delivered, so that the
//! instance that wakes goes on from there.

use super::{Face, Hosted, StreamObject};
use crate::platform::object_counts;

impl<F: Face> Hosted<F> {
    /// When this object may sleep (`HIBERNATE=1`, every seat on a socket, nothing to keep
    /// alive), keeps what it counted, so that the instance that wakes goes on from there:
    /// one row written per flush or departure that changed a count.
    pub fn keep_counts(&mut self) {
        if !self.config.hibernate || !self.start_counted || self.stream.needs_keep_alive() {
            return;
        }
        let counted = self.stream.counted();
        if self.kept == Some(counted) {
            return;
        }
        match object_counts::keep(&self.sql, &counted) {
            Ok(()) => self.kept = Some(counted),
            Err(e) => worker::console_error!("an object's counts were not kept: {e}"),
        }
    }
}

impl<F: Face> StreamObject<F> {
    /// Counts this start of the object, once it does work (a seat, a publish, seats to
    /// restore): an object of a stream never used, opened to answer a read (its stats),
    /// writes nothing.
    pub fn count_start(&self) {
        if self.with(|h| h.start_counted) {
            return;
        }
        let counted = object_counts::count_start(&self.state.storage().sql());
        self.with(|h| {
            h.start_counted = true; // tried once: a failure is not tried again per call
            match counted {
                Ok(starts) => h.starts = starts,
                Err(e) => worker::console_error!("an object's start was not counted: {e}"),
            }
        });
    }
}
