//! What was published (or relayed) since the last flush, to go out as one write per seat.

use std::collections::BTreeMap;

use crate::domain::announcer::{Announcer, Fanout, Outlet};
use crate::domain::history::{EventId, StoredEvent};

/// Events published since the last flush. Each is stored (or, under
/// `PublishAck::Accepted`, has its id reserved) before it is put here, so nothing put
/// here is ever taken back.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Their frames, concatenated: written to every listener as one chunk.
    pub(crate) frames: String,
    /// Each frame's end in `frames` and the id a seat must be below to get it (for a
    /// `gap` notice, the id after the hole's start).
    ends: Vec<(usize, EventId)>,
    events: u64,
    /// Those not stored yet: stored at the flush, before anyone sees them.
    pub(crate) unstored: Vec<StoredEvent>,
}

impl Outbox {
    pub(crate) fn push(&mut self, event: StoredEvent, stored: bool) {
        self.push_frame(&event.frame, event.id);
        if !stored {
            self.unstored.push(event);
        }
    }

    pub(crate) fn push_frame(&mut self, frame: &str, key: EventId) {
        self.frames.push_str(frame);
        self.ends.push((self.frames.len(), key));
        self.events += 1;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// The first and last keys.
    fn span(&self) -> (EventId, EventId) {
        let first = self.ends.first().map_or(EventId(0), |e| e.1);
        let last = self.ends.last().map_or(EventId(0), |e| e.1);
        (first, last)
    }

    /// The frames a seat that has everything up to `after` still needs, and how many.
    fn after(&self, after: EventId) -> (String, u64) {
        let mut start = 0;
        let mut text = String::new();
        let mut count = 0;
        for &(end, key) in &self.ends {
            if key > after {
                text.push_str(&self.frames[start..end]);
                count += 1;
            }
            start = end;
        }
        (text, count)
    }

    /// Writes the outbox to every seat of `announcer`, each getting what comes after its
    /// watermark: the whole chunk for nearly all, a part of it for seats that joined ahead.
    pub(crate) fn announce<O: Outlet, I>(
        &self,
        announcer: &mut Announcer<O, I>,
        chunk: &O::Chunk,
        watermark: impl Fn(&I) -> EventId,
    ) -> Fanout {
        let (first, last) = self.span();
        let partial: BTreeMap<EventId, (O::Chunk, u64)> = announcer
            .interests()
            .map(&watermark)
            .filter(|w| *w >= first && *w < last)
            .map(|w| {
                let (text, count) = self.after(w);
                (w, (O::chunk(&text), count))
            })
            .collect();
        announcer.announce_by(|interest| {
            let w = watermark(interest);
            if w < first {
                Some((chunk, self.events))
            } else {
                partial.get(&w).map(|(c, n)| (c, *n))
            }
        })
    }
}
