//! What was published (or relayed) since the last flush, to go out as one write per seat.
//!
//! Seats that should receive the same frames share one chunk, made once: on a channel
//! that is every seat but those that joined ahead of part of the outbox; on the Mercure
//! hub, every seat whose filter admits the same routed events.

use std::collections::{BTreeMap, HashMap};

use super::route::Route;
use crate::domain::announcer::{Announcer, Fanout, Outlet};
use crate::domain::history::{EventId, StoredEvent};
use crate::protocol;

/// Events published since the last flush. Each is stored (or, under
/// `PublishAck::Accepted`, has its id reserved) before it is put here, so nothing put
/// here is ever taken back.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Their frames, concatenated: written to every seat that takes them all as one chunk.
    pub(crate) frames: String,
    entries: Vec<Entry>,
    /// Whether any entry has a route (then seats' filters pick what they get).
    routed: bool,
    /// Those not stored yet: stored at the flush, before anyone sees them.
    pub(crate) unstored: Vec<StoredEvent>,
}

#[derive(Debug)]
struct Entry {
    /// The frame's end in `frames`.
    end: usize,
    /// The id a seat must be below to get it (for a `gap` notice, the id after the
    /// hole's start).
    key: EventId,
    /// Who may receive it; none: every seat.
    route: Option<Route>,
}

impl Outbox {
    /// A published event (with its route, when only some seats may receive it); one not
    /// `stored` yet is stored at the flush.
    pub(crate) fn push(&mut self, event: StoredEvent, stored: bool, route: Option<Route>) {
        self.routed |= route.is_some();
        self.push_entry(&event.frame, event.id, route);
        if !stored {
            self.unstored.push(event);
        }
    }

    pub(crate) fn push_frame(&mut self, frame: &str, key: EventId) {
        self.push_entry(frame, key, None);
    }

    fn push_entry(&mut self, frame: &str, key: EventId, route: Option<Route>) {
        self.frames.push_str(frame);
        self.entries.push(Entry {
            end: self.frames.len(),
            key,
            route,
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn events(&self) -> u64 {
        self.entries.len() as u64
    }

    /// The first and last keys.
    fn span(&self) -> (EventId, EventId) {
        let first = self.entries.first().map_or(EventId(0), |e| e.key);
        let last = self.entries.last().map_or(EventId(0), |e| e.key);
        (first, last)
    }

    /// The frames of the entries `take` picks, and how many; `relayed`: as written for a
    /// child object (a routed event with its sequence number and route).
    fn picked(&self, relayed: bool, mut take: impl FnMut(&Entry) -> bool) -> (String, u64) {
        let mut start = 0;
        let mut text = String::new();
        let mut count = 0;
        for entry in &self.entries {
            if take(entry) {
                let frame = &self.frames[start..entry.end];
                match &entry.route {
                    Some(route) if relayed => text.push_str(&protocol::relayed(
                        frame,
                        None,
                        Some((entry.key.0, &route.to_stored())),
                    )),
                    _ => text.push_str(frame),
                }
                count += 1;
            }
            start = entry.end;
        }
        (text, count)
    }

    /// Writes the outbox to every child object of `relays`, each getting what comes after
    /// its watermark, every event whatever its route (each child filters for its own
    /// seats): routed events say their sequence number and route. Without routed events
    /// the children share `chunk`, the listeners' chunk.
    pub(crate) fn announce_relays<O: Outlet, I>(
        &self,
        relays: &mut Announcer<O, I>,
        chunk: &O::Chunk,
        watermark: impl Fn(&I) -> EventId,
    ) -> Fanout {
        if relays.is_empty() {
            return Fanout::default();
        }
        if !self.routed {
            return self.announce_after(relays, chunk, false, watermark);
        }
        let (text, _) = self.picked(true, |_| true);
        self.announce_after(relays, &O::chunk(&text), true, watermark)
    }

    /// Writes the outbox to every seat of `announcer`, each getting what comes after its
    /// watermark and what its filter admits (`admits`, asked only of routed events, once
    /// per route for all the seats of one `class`, [`super::Filter::class`]): the whole
    /// chunk (`chunk`, all the frames) for nearly all, a part of it for seats that joined
    /// ahead or filter some out, made once per distinct part.
    pub(crate) fn announce<O: Outlet, I>(
        &self,
        announcer: &mut Announcer<O, I>,
        chunk: &O::Chunk,
        watermark: impl Fn(&I) -> EventId,
        admits: impl Fn(&I, &Route) -> bool,
        class: impl Fn(&I) -> Option<&str>,
    ) -> Fanout {
        if self.routed {
            return self.announce_routed(announcer, chunk, watermark, admits, class);
        }
        self.announce_after(announcer, chunk, false, watermark)
    }

    /// Writes every entry after each seat's watermark: `whole` (all of them) to the seats
    /// below the first, a part made once per watermark to those that joined ahead;
    /// `relayed`: the parts as written for child objects.
    fn announce_after<O: Outlet, I>(
        &self,
        announcer: &mut Announcer<O, I>,
        whole: &O::Chunk,
        relayed: bool,
        watermark: impl Fn(&I) -> EventId,
    ) -> Fanout {
        let (first, last) = self.span();
        let partial: BTreeMap<EventId, (O::Chunk, u64)> = announcer
            .interests()
            .map(&watermark)
            .filter(|w| *w >= first && *w < last)
            .map(|w| {
                let (text, count) = self.picked(relayed, |e| e.key > w);
                (w, (O::chunk(&text), count))
            })
            .collect();
        let events = self.events();
        announcer.announce_by(|interest| {
            let w = watermark(interest);
            if w < first {
                Some((whole, events))
            } else {
                partial.get(&w).map(|(c, n)| (c, *n))
            }
        })
    }

    /// As [`Outbox::announce`], when seats filter: one selection per seat, one chunk per
    /// distinct selection.
    fn announce_routed<O: Outlet, I>(
        &self,
        announcer: &mut Announcer<O, I>,
        chunk: &O::Chunk,
        watermark: impl Fn(&I) -> EventId,
        admits: impl Fn(&I, &Route) -> bool,
        class: impl Fn(&I) -> Option<&str>,
    ) -> Fanout {
        let admitted = |seat: &I| -> Vec<bool> {
            let admits = |e: &Entry| e.route.as_ref().is_none_or(|r| admits(seat, r));
            self.entries.iter().map(admits).collect()
        };
        // What each class admits, asked of its first seat only.
        let mut by_class: HashMap<&str, Vec<bool>> = HashMap::new();
        let selections: Vec<Vec<bool>> = announcer
            .interests()
            .map(|seat| {
                let w = watermark(seat);
                let own;
                let admits = match class(seat) {
                    Some(c) => by_class.entry(c).or_insert_with(|| admitted(seat)),
                    None => {
                        own = admitted(seat);
                        &own
                    }
                };
                let after = self.entries.iter().map(|e| e.key > w);
                after.zip(admits).map(|(after, &on)| after && on).collect()
            })
            .collect();
        let mut parts: HashMap<&[bool], (O::Chunk, u64)> = HashMap::new();
        for selection in &selections {
            if selection.iter().all(|&on| on) {
                continue;
            }
            parts.entry(selection.as_slice()).or_insert_with(|| {
                let mut on = selection.iter();
                let (text, count) = self.picked(false, |_| *on.next().unwrap_or(&false));
                (O::chunk(&text), count)
            });
        }
        let events = self.events();
        let mut next = selections.iter();
        announcer.announce_by(|_| {
            let selection = next.next()?;
            if selection.iter().all(|&on| on) {
                return Some((chunk, events));
            }
            let (part, count) = parts.get(selection.as_slice())?;
            (*count > 0).then_some((part, *count))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::domain::announcer::tests::TestOutlet;

    fn route(topic: &str) -> Route {
        Route {
            topics: vec![topic.to_string()],
            private: false,
        }
    }

    /// A seat: its watermark, and the topics it admits.
    type Seat = (EventId, Vec<&'static str>);

    fn seated(seats: &[(u64, &[&'static str])]) -> (Announcer<TestOutlet, Seat>, Vec<TestOutlet>) {
        let mut announcer = Announcer::new(5);
        let outlets: Vec<TestOutlet> = seats.iter().map(|_| TestOutlet::default()).collect();
        for ((after, topics), outlet) in seats.iter().zip(&outlets) {
            announcer.add(outlet.clone(), (EventId(*after), topics.to_vec()), 0);
        }
        (announcer, outlets)
    }

    fn received(o: &TestOutlet) -> Vec<Rc<str>> {
        o.0.borrow().queue.iter().cloned().collect()
    }

    #[test]
    fn unrouted_events_go_to_every_seat_as_one_shared_chunk_except_after_a_seats_watermark() {
        let mut outbox = Outbox::default();
        for id in 1..=3 {
            outbox.push_frame(&format!("e{id};"), EventId(id));
        }
        let (mut seats, outlets) = seated(&[(0, &[]), (0, &[]), (2, &[]), (3, &[])]);
        let chunk = TestOutlet::chunk(&outbox.frames);
        let fanout = outbox.announce(&mut seats, &chunk, |s| s.0, |_, _| false, |_| None);
        assert_eq!(fanout.events, 3 + 3 + 1);
        assert!(Rc::ptr_eq(
            &received(&outlets[0])[0],
            &received(&outlets[1])[0]
        ));
        assert_eq!(&*received(&outlets[2])[0], "e3;");
        assert!(received(&outlets[3]).is_empty());
    }

    #[test]
    fn routed_events_go_to_the_seats_that_admit_them_one_chunk_per_distinct_selection() {
        let mut outbox = Outbox::default();
        let event = |id, frame: &str| StoredEvent::new(EventId(id), 0, frame.to_string());
        outbox.push(event(1, "a1;"), true, Some(route("a")));
        outbox.push(event(2, "b2;"), true, Some(route("b")));
        outbox.push_frame("all3;", EventId(3));
        let (mut seats, outlets) = seated(&[
            (0, &["a"]),
            (0, &["a"]),
            (0, &["a", "b"]),
            (0, &["c"]),
            (2, &["a", "b"]),
        ]);
        let chunk = TestOutlet::chunk(&outbox.frames);
        let asked = std::cell::Cell::new(0);
        let fanout = outbox.announce(
            &mut seats,
            &chunk,
            |s| s.0,
            |s, r| {
                asked.set(asked.get() + 1);
                r.topics.iter().any(|t| s.1.contains(&t.as_str()))
            },
            |s| (s.1 == ["a"]).then_some("only a"),
        );
        // The two seats of one class are asked once; the three others each.
        assert_eq!(asked.get(), 2 * 4);
        let texts: Vec<String> = outlets
            .iter()
            .map(|o| received(o).iter().map(|c| c.to_string()).collect())
            .collect();
        assert_eq!(
            texts,
            ["a1;all3;", "a1;all3;", "a1;b2;all3;", "all3;", "all3;"]
        );
        // Seats with the same selection share one chunk; one that takes all gets the whole.
        assert!(Rc::ptr_eq(
            &received(&outlets[0])[0],
            &received(&outlets[1])[0]
        ));
        assert!(Rc::ptr_eq(&received(&outlets[2])[0], &chunk));
        assert!(Rc::ptr_eq(
            &received(&outlets[3])[0],
            &received(&outlets[4])[0]
        ));
        assert_eq!(fanout.events, 2 + 2 + 3 + 1 + 1);
    }
}
