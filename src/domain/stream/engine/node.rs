//! The node strategy: an object below a stream's root takes its events from its parent
//! (a relay of the parent's stream), keeps the recent ones to resume listeners without
//! asking up, and starts over when the parent's head goes back below its own. The root
//! strategy gives the ids and holds the whole history ([`Stream::publish_batch`]).

use super::*;

/// Where this object's events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// The channel's root: it gives the ids, and its log holds the whole history.
    Root,
    /// A node below: its events arrive from its parent.
    Relayed(Upstream),
}

/// Below the root: how far the node's stream from its parent has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Upstream {
    /// Not started yet: the node takes no seat.
    Waiting,
    /// The parent answered with a head below the id the node asked after, so the node
    /// starts over at the parent's ids ([`Stream::relay_started`]). The stream begins
    /// with the parent's `gap`, which is for the seats the node already had: it takes no
    /// new seat until the gap has arrived. `after`: the id it asked after, asked again
    /// if the stream ends before.
    StartingOver { after: EventId },
    /// Every event of the channel after `known_from`, up to the last relayed, is in the
    /// log (a resume from there is answered here).
    Live { known_from: EventId },
}

impl<O: Outlet, L: EventLog, F: Filter> Stream<O, L, F> {
    /// The stream from the parent has started (again), asked after `asked`
    /// ([`Stream::resume_after`], or, for a node that has relayed nothing yet, a resume
    /// it was started for, to hold what its returning listeners missed; none: from now).
    /// It brings what the parent has after that id (a replay, each event with its
    /// publication time) up to `position`, the parent's head when it answered, then live
    /// events.
    ///
    /// A node's last id never exceeds what its parent has answered it with. A parent
    /// whose head is below the id asked after (the root's storage was reset, or the
    /// resume was from an id the channel never gave) answers as the root answers such a
    /// resume: `gap`, then every event it keeps. The node then starts over at the
    /// parent's ids: what it kept is dropped (those ids may name other events now), its
    /// listeners get the parent's gap and events, as a listener resuming on the root
    /// would, and its children's streams are ended, so that each starts over the same
    /// way when it resumes.
    pub fn relay_started(&mut self, position: EventId, asked: Option<EventId>) {
        let Origin::Relayed(upstream) = self.origin else {
            return;
        };
        self.upstream_position = position;
        let from = asked.unwrap_or(position);
        if from > position {
            self.start_over(from);
        } else if !matches!(upstream, Upstream::Live { .. }) {
            self.last_id = from;
            self.origin = Origin::Relayed(Upstream::Live { known_from: from });
        }
    }

    /// A fresh instance of a node that slept goes on from `last_id`, the last event it
    /// relayed (its socket from the parent noted it): its stream from the parent is still
    /// up, and what it relayed before is no longer held here (a resume from before is
    /// asked up).
    pub fn relay_resumed(&mut self, last_id: EventId) {
        if let Origin::Relayed(_) = self.origin {
            self.last_id = last_id;
            self.upstream_position = last_id;
            self.origin = Origin::Relayed(Upstream::Live {
                known_from: last_id,
            });
        }
    }

    /// Below the root, the id its stream from the parent asks after when it starts again:
    /// its last relayed id, or, while it starts over, the id it asked after (so that the
    /// parent's gap comes again). None before its stream first started, and on the root.
    pub fn resume_after(&self) -> Option<EventId> {
        match self.origin {
            Origin::Relayed(Upstream::Live { .. }) => Some(self.last_id),
            Origin::Relayed(Upstream::StartingOver { after }) => Some(after),
            _ => None,
        }
    }

    /// Drops what this node relayed before its parent's head went below it, and sets every
    /// listener to receive the stream from the parent's first frame on (its gap). A child
    /// fed from here cannot go on from its last id, which is above this node's now: its
    /// stream is ended, and it starts over when it resumes.
    fn start_over(&mut self, asked: EventId) {
        self.flush();
        let kept = self.log.len();
        if let Err(e) = self.log.prune(kept, 0) {
            self.store_error = Some(e);
        }
        self.last_id = EventId(0);
        self.announcer
            .update_interests(|seat| seat.after = EventId(0));
        self.relays.close_where(|_| true);
        // A face that tells holes with a gap waits for the parent's (its first frame);
        // one that does not is live again at once.
        self.origin = if F::TELLS_GAPS {
            Origin::Relayed(Upstream::StartingOver { after: asked })
        } else {
            Origin::Relayed(Upstream::Live {
                known_from: EventId(0),
            })
        };
    }

    /// Ends every listener's and child's stream, after what is queued, when this node
    /// cannot get its stream from its parent: they would stay open with nothing to carry.
    /// Their clients reconnect and resume, possibly elsewhere in the tree.
    pub fn end_streams(&mut self) {
        self.flush();
        self.announcer.close_where(|_| true);
        self.relays.close_where(|_| true);
    }

    /// Takes frames relayed from the parent, in the channel's order: events (with their
    /// id) and `gap` notices (without); they go out with the next flush. An event at or
    /// below the last relayed id is one already had, and is skipped. The frame that ends
    /// the stream ends every seat's here, after what came before it.
    pub fn ingest(&mut self, frames: &[protocol::RawFrame], now_ms: u64) {
        let known_from = match self.origin {
            Origin::Relayed(Upstream::Live { known_from }) => known_from,
            Origin::Relayed(Upstream::StartingOver { .. }) if !frames.is_empty() => {
                // The parent's gap (its first frame) goes to every seat, all of which the
                // node had before it started over; from here on the node is live again.
                let known_from = EventId(0);
                self.origin = Origin::Relayed(Upstream::Live { known_from });
                known_from
            }
            _ => return,
        };
        let mut kept = Vec::new();
        let mut ending = None;
        for frame in frames {
            if frame.end {
                // The stream's last frame: nothing comes after it.
                ending = Some(frame.text.as_str());
                break;
            }
            // A routed event says its sequence number (its id is its public key); any
            // other event's id is its sequence number. On a routed face every event is
            // routed: a frame that does not say its number is no one's (its id, a
            // publisher's, is never taken for one).
            let seq = match (frame.seq, frame.id.as_deref()) {
                (Some(seq), _) => Some(EventId(seq)),
                (None, _) if F::ROUTED => continue,
                (None, Some(id)) => EventId::parse(id).ok(),
                (None, None) => {
                    self.outbox.push_frame(&frame.text, self.last_id.next());
                    continue;
                }
            };
            let Some(id) = seq.filter(|id| *id > self.last_id) else {
                continue;
            };
            self.last_id = id;
            let event = StoredEvent {
                id,
                at_ms: frame.at_ms.unwrap_or(now_ms),
                frame: frame.text.clone(),
                key: frame.seq.and(frame.id.clone()),
                route: frame.route.clone(),
            };
            // A routed event whose route does not read back, or is missing, is no one's:
            // never shown by mistake.
            let no_one = || Route {
                topics: Vec::new(),
                private: true,
            };
            let route = match (frame.seq, event.route.as_deref()) {
                (_, Some(stored)) => Some(Route::from_stored(stored).unwrap_or_else(no_one)),
                (Some(_), None) => Some(no_one()),
                (None, None) => None,
            };
            self.outbox.push(event.clone(), true, route);
            if id > known_from {
                kept.push(event);
            }
        }
        if !kept.is_empty() {
            if let Err(e) = self.log.append(&kept) {
                self.store_error = Some(e);
            }
            self.apply_history(now_ms);
        }
        if let Some(notice) = ending {
            self.ended_from_above(notice);
        }
    }

    /// The least a replay from above must bring a seat to for this object to go on from
    /// there with what it holds: its last id, or, while it catches up after its stream
    /// from the parent resumed, where what it keeps begins.
    pub fn holds_through(&self) -> EventId {
        match self.origin {
            Origin::Relayed(Upstream::Live { known_from }) => known_from.max(self.last_id),
            _ => self.last_id,
        }
    }

    /// Below the root, what the log no longer holds is no longer answered here.
    pub(super) fn note_pruned(&mut self) {
        if let Origin::Relayed(Upstream::Live { known_from: from }) = &mut self.origin {
            let held_from = match self.log.oldest_id() {
                Some(oldest) => EventId(oldest.0 - 1),
                None => self.last_id,
            };
            *from = (*from).max(held_from);
        }
    }

    /// Whether this object can take seats: the root always; a node below once its
    /// stream from the parent has started (and, when it starts over, once the parent's
    /// gap has arrived).
    pub fn is_live(&self) -> bool {
        matches!(
            self.origin,
            Origin::Root | Origin::Relayed(Upstream::Live { .. })
        )
    }

    /// Whether a resume after `after` is answered from what this object holds: on the
    /// root, always (its log is the channel's history); below it, while its stream from the
    /// parent is live and what it keeps reaches from `after` to its last id.
    pub(super) fn holds_resume(&self, after: EventId) -> bool {
        match self.origin {
            Origin::Root => true,
            Origin::Relayed(Upstream::Live { known_from }) => {
                known_from <= after && after <= self.last_id
            }
            Origin::Relayed(_) => false,
        }
    }

    /// Whether this object can answer a replay that must bring a seat to `through`: the
    /// root always (its head is the channel's; an answer below `through` tells the child
    /// that the head went back), a node once it has relayed that far.
    pub(super) fn reaches(&self, through: EventId) -> bool {
        self.origin == Origin::Root || self.last_id >= through
    }
}
