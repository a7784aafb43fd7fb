//! The Mercure hub's state: one hub-wide, publication-ordered history of updates, and
//! subscribers that each receive the updates their subscriptions and grants admit.
//!
//! It is a second face on the channel's machinery, not a fork: the [`Announcer`] holds the
//! subscribers (bounded queues, slow and vanished ones, keep-alives), the [`EventLog`] and
//! [`HistoryPolicy`] keep the history, and every byte comes from the protocol encoder.
//! What differs is who gets what: each subscriber carries an [`Filter`] (its
//! subscriptions and grants, from the Mercure rules), and each update a [`Route`]
//! (its topics, and whether it is private), stored with it so that replays filter too.
//! A leaf of a fan-out tree can host subscribers the same way, each filtering for its own.

use crate::protocol::{self, Event};

use super::announcer::{Fanout, Outlet};
use super::channel::{Channel, ChannelSettings, SeatKind, SubscribeError};
use super::config::PublishAck;
use super::history::{EventId, EventLog, HistoryPolicy, LogError};
use super::mercure::EARLIEST;
use super::stream::{Counters, Filter, Route};
use super::tree::TreeSettings;

/// One update, ready to be stored and sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubUpdate {
    /// The id subscribers see and resume from (given by the publisher, or generated).
    pub id: String,
    pub route: Route,
    pub event_type: Option<String>,
    pub retry_ms: Option<u64>,
    pub data: String,
}

impl HubUpdate {
    /// Its wire form (§6.5): `event:` only when a type was published, `retry:` only when
    /// given, `id:` always, then the data lines.
    pub fn encode(&self) -> Result<String, protocol::FieldError> {
        let mut event = Event::new(self.data.clone()).with_id(self.id.clone())?;
        if let Some(t) = &self.event_type {
            event = event.with_type(t.clone())?;
        }
        if let Some(retry) = self.retry_ms {
            event = event.with_retry(retry);
        }
        Ok(event.encode())
    }
}

/// Where a subscriber asks to resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// Every kept update it would receive.
    Earliest,
    /// The updates published after the first kept one with this id.
    After(String),
}

/// The settings of the hub.
#[derive(Debug, Clone, Copy)]
pub struct HubSettings {
    pub queue_capacity: usize,
    pub max_subscribers: usize,
    /// What all the subscribers' matchers may hold together, in bytes.
    pub max_matcher_bytes: usize,
    pub retry_ms: u64,
    pub history: HistoryPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    /// The hub already has its maximum number of subscribers.
    Full {
        max: usize,
    },
    /// The subscribers' matchers hold all the memory the hub gives them.
    MatchersFull {
        max: usize,
    },
    /// An id, type or retry cannot be written (the Worker validates them first).
    Field(protocol::FieldError),
    Log(LogError),
}

impl std::fmt::Display for HubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HubError::Full { max } => write!(f, "the hub has its maximum of {max} subscribers"),
            HubError::MatchersFull { max } => write!(
                f,
                "the hub's subscribers' matchers hold their maximum of {max} bytes"
            ),
            HubError::Field(e) => write!(f, "{e}"),
            HubError::Log(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for HubError {}

impl From<LogError> for HubError {
    fn from(e: LogError) -> Self {
        HubError::Log(e)
    }
}

/// What a subscribe found of its cursor: the `Last-Event-ID` to answer with (the
/// requested id when it is kept, else `earliest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    pub last_event_id: Option<String>,
}

/// The Mercure face on the stream engine: a channel's root whose seats filter by their
/// subscriptions and grants, whose events carry their public id as a key, and whose
/// resumes are by that key, with holes left silent.
pub struct Hub<O: Outlet, L: EventLog, S: Filter> {
    stream: Channel<O, L, S>,
    /// What all the subscribers' matchers may hold together, in bytes.
    max_matcher_bytes: usize,
}

impl<O: Outlet, L: EventLog, S: Filter> Hub<O, L, S> {
    pub fn new(settings: HubSettings, log: L) -> Self {
        let engine = ChannelSettings {
            queue_capacity: settings.queue_capacity,
            max_listeners: settings.max_subscribers,
            retry_ms: settings.retry_ms,
            history: settings.history,
            // Every update is answered once it is stored.
            publish_ack: PublishAck::Stored,
            // The hub is one object: no one is placed below it.
            tree: TreeSettings {
                listeners_per_object: 0,
                fanout: 2,
            },
        };
        Hub {
            stream: Channel::new(engine, log),
            max_matcher_bytes: settings.max_matcher_bytes,
        }
    }

    pub fn subscribers(&self) -> impl Iterator<Item = &S> {
        self.stream.filters()
    }

    pub fn len(&self) -> usize {
        self.stream.listeners()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores an update in the hub's history (it is answered once stored); it goes out
    /// with the next [`Hub::flush`].
    pub fn publish(&mut self, update: &HubUpdate, now_ms: u64) -> Result<(), HubError> {
        let frame = update.encode().map_err(HubError::Field)?;
        self.stream
            .publish_routed(frame, update.id.clone(), update.route.clone(), now_ms)?;
        Ok(())
    }

    /// Writes the updates published since the last flush: to each subscriber, the ones
    /// it admits, as one chunk (subscribers that admit the same updates share it).
    pub fn flush(&mut self) -> Fanout {
        self.stream.flush()
    }

    /// Starts a subscriber: the `retry:` field, then, when it gave a cursor, the kept
    /// updates it admits after that cursor; then live updates, with nothing lost or
    /// doubled in between. An unknown or expired id replays nothing.
    pub fn subscribe(
        &mut self,
        outlet: O,
        subscriber: S,
        cursor: Option<&Cursor>,
        now_ms: u64,
    ) -> Result<Subscribed, HubError> {
        if !self.stream.has_room() {
            return Err(HubError::Full {
                max: self.stream.settings().max_listeners,
            });
        }
        let fits = |hub: &Self| {
            let held: usize = hub.subscribers().map(S::footprint).sum();
            held.saturating_add(subscriber.footprint()) <= hub.max_matcher_bytes
        };
        // Subscribers known to be gone hold nothing: removed before refusing.
        if !fits(self) {
            self.stream.sweep();
        }
        if !fits(self) {
            return Err(HubError::MatchersFull {
                max: self.max_matcher_bytes,
            });
        }
        let (after, found) = match cursor {
            None => (None, None),
            Some(Cursor::Earliest) => (Some(EventId(0)), None),
            Some(Cursor::After(id)) => {
                let seq = self.stream.find_key(id, now_ms)?;
                (seq, seq.map(|_| id.clone()))
            }
        };
        self.stream
            .join(SeatKind::Listener(subscriber), outlet, after, now_ms)
            .map_err(|e| match e {
                SubscribeError::TooManyListeners { max } => HubError::Full { max },
                SubscribeError::Log(e) => HubError::Log(e),
                SubscribeError::NotCovered => {
                    HubError::Log(LogError("the hub holds its whole history".into()))
                }
            })?;
        Ok(Subscribed {
            last_event_id: cursor.map(|_| found.unwrap_or_else(|| EARLIEST.to_string())),
        })
    }

    /// Writes a keep-alive to every subscriber, so that the runtime finds out which clients
    /// are gone (a write to a vanished client fails); [`Hub::has_room`] then sees it.
    pub fn probe(&mut self) {
        self.stream.probe();
    }

    /// Whether a new subscriber would be accepted now (the known gone removed first).
    pub fn has_room(&mut self) -> bool {
        self.stream.has_room()
    }

    /// A keep-alive: a comment to every subscriber; those that took nothing since the
    /// previous one are cut; the history's age limit is applied.
    pub fn keep_alive(&mut self, now_ms: u64) -> Result<(), LogError> {
        self.stream.keep_alive(now_ms);
        self.stream.take_store_error().map_or(Ok(()), Err)
    }

    /// Ends the streams of subscribers `ends` says are over (say, their token expired).
    pub fn close_where(&mut self, ends: impl FnMut(&S) -> bool) -> usize {
        self.stream.close_where(ends)
    }

    /// Subscribers that left (slow, gone, stalled, closed) since the last call.
    pub fn take_departed(&mut self) -> Vec<S> {
        self.stream.take_departed()
    }

    /// The id of the newest update, while it is kept (the subscriptions API's
    /// `lastEventID`).
    pub fn last_event_id(&self) -> Result<Option<String>, LogError> {
        let before_newest = EventId(self.stream.last_id().0.saturating_sub(1));
        Ok(self
            .stream
            .log()
            .after(before_newest)?
            .pop()
            .and_then(|e| e.key))
    }

    pub fn counters(&self) -> Counters {
        self.stream.counters()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::announcer::tests::TestOutlet;
    use crate::domain::history::MemoryLog;
    use crate::protocol::Parser;

    /// A test subscriber: the topics it listens to, and whether it may see private updates.
    type Sub = crate::domain::stream::route::tests::Topics;

    fn hub() -> Hub<TestOutlet, MemoryLog, Sub> {
        Hub::new(
            HubSettings {
                queue_capacity: 5,
                max_subscribers: 10,
                max_matcher_bytes: 1000,
                retry_ms: 1000,
                history: HistoryPolicy {
                    max_events: 100,
                    max_age_ms: u64::MAX,
                },
            },
            MemoryLog::default(),
        )
    }

    fn update(id: &str, topics: &[&str], private: bool) -> HubUpdate {
        HubUpdate {
            id: id.into(),
            route: Route {
                topics: topics.iter().map(|t| t.to_string()).collect(),
                private,
            },
            event_type: None,
            retry_ms: None,
            data: format!("data of {id}"),
        }
    }

    fn sub(topics: &[&'static str], private: bool) -> Sub {
        Sub {
            topics: topics.to_vec(),
            private,
            footprint: 0,
        }
    }

    #[test]
    fn a_subscriber_whose_matchers_would_pass_the_hubs_bound_is_refused_and_the_others_go_on() {
        let mut h = hub();
        let heavy = |footprint| Sub {
            footprint,
            ..sub(&["books"], false)
        };
        let first = join(&mut h, heavy(600), None);
        let o = TestOutlet::default();
        assert_eq!(
            h.subscribe(o, heavy(401), None, 0),
            Err(HubError::MatchersFull { max: 1000 })
        );
        let second = join(&mut h, heavy(400), None);
        h.publish(&update("a", &["books"], false), 1).unwrap();
        h.flush();
        assert_eq!(ids(&first), ["a"]);
        assert_eq!(ids(&second), ["a"]);
        assert_eq!(h.len(), 2);
    }

    fn join(h: &mut Hub<TestOutlet, MemoryLog, Sub>, s: Sub, cursor: Option<Cursor>) -> TestOutlet {
        let o = TestOutlet::default();
        h.subscribe(o.clone(), s, cursor.as_ref(), 0).unwrap();
        o
    }

    fn ids(o: &TestOutlet) -> Vec<String> {
        o.0.borrow_mut().read_all();
        Parser::parse_all(o.0.borrow().text().as_bytes())
            .into_iter()
            .map(|e| e.last_event_id)
            .collect()
    }

    #[test]
    fn each_subscriber_gets_the_updates_it_admits_once_each() {
        let mut h = hub();
        let books = join(&mut h, sub(&["books", "films"], false), None);
        let films = join(&mut h, sub(&["films"], true), None);
        h.publish(&update("a", &["books", "films"], false), 1)
            .unwrap();
        h.publish(&update("b", &["films"], true), 2).unwrap();
        h.publish(&update("c", &["music"], false), 3).unwrap();
        h.flush();
        assert_eq!(
            ids(&books),
            ["a"],
            "once, though two topics match; no private"
        );
        assert_eq!(ids(&films), ["a", "b"]);
        assert_eq!(h.counters().delivered, 3);
        assert_eq!(h.counters().published, 3);
    }

    #[test]
    fn a_replay_filters_too_and_answers_the_cursor_it_found() {
        let mut h = hub();
        for (id, topics, private) in [
            ("1", &["x"][..], false),
            ("2", &["y"][..], false),
            ("3", &["x"][..], true),
            ("2", &["x"][..], false),
            ("5", &["x"][..], false),
        ] {
            h.publish(&update(id, topics, private), 1).unwrap();
        }
        let o = TestOutlet::default();
        let found = h
            .subscribe(o.clone(), sub(&["x"], false), Some(&Cursor::Earliest), 0)
            .unwrap();
        assert_eq!(found.last_event_id.as_deref(), Some("earliest"));
        assert_eq!(ids(&o), ["1", "2", "5"]);
        // A reused id resumes after its first occurrence.
        let o = TestOutlet::default();
        let found = h
            .subscribe(
                o.clone(),
                sub(&["x"], true),
                Some(&Cursor::After("2".into())),
                0,
            )
            .unwrap();
        assert_eq!(found.last_event_id.as_deref(), Some("2"));
        assert_eq!(ids(&o), ["3", "2", "5"]);
        // An unknown id replays nothing.
        let o = TestOutlet::default();
        let found = h
            .subscribe(
                o.clone(),
                sub(&["x"], true),
                Some(&Cursor::After("nope".into())),
                0,
            )
            .unwrap();
        assert_eq!(found.last_event_id.as_deref(), Some("earliest"));
        assert_eq!(ids(&o), Vec::<String>::new());
        // No cursor: nothing replayed, no Last-Event-ID.
        assert_eq!(
            h.subscribe(TestOutlet::default(), sub(&["x"], true), None, 0)
                .unwrap()
                .last_event_id,
            None
        );
    }

    #[test]
    fn updates_published_while_a_subscriber_joins_arrive_once() {
        let mut h = hub();
        h.publish(&update("a", &["x"], false), 1).unwrap();
        let resuming = join(&mut h, sub(&["x"], false), Some(Cursor::Earliest));
        h.publish(&update("b", &["x"], false), 2).unwrap();
        h.flush();
        assert_eq!(ids(&resuming), ["a", "b"]);
    }

    #[test]
    fn the_wire_form_has_type_and_retry_only_when_given() {
        let mut u = update("urn:x", &["t"], false);
        assert_eq!(u.encode().unwrap(), "id: urn:x\ndata: data of urn:x\n\n");
        u.event_type = Some("book".into());
        u.retry_ms = Some(1500);
        u.data = "a\n\n        b".into();
        assert_eq!(
            u.encode().unwrap(),
            "event: book\nretry: 1500\nid: urn:x\ndata: a\ndata: \ndata:         b\n\n"
        );
        u.id = "a\nb".into();
        assert!(u.encode().is_err());
    }

    #[test]
    fn expired_subscribers_are_closed_and_reported_as_departed() {
        let mut h = hub();
        let o = join(&mut h, sub(&["x"], false), None);
        join(&mut h, sub(&["y"], false), None);
        assert_eq!(h.close_where(|s| s.topics == ["x"]), 1);
        assert!(o.0.borrow().closed);
        assert_eq!(h.take_departed(), [sub(&["x"], false)]);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn routes_are_kept_in_a_form_they_are_read_back_from() {
        let route = Route {
            topics: vec!["https://a.test/{x}".into(), "\"q\"".into()],
            private: true,
        };
        assert_eq!(Route::from_stored(&route.to_stored()), Some(route));
        assert_eq!(Route::from_stored("{}"), None);
    }
}
