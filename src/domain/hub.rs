//! The Mercure face on the stream engine: one hub-wide, publication-ordered history of
//! updates, and subscribers that each receive the updates their subscriptions and grants
//! admit.
//!
//! It is rules on the engine, not a fork: a hub object is a [`Stream`] (its root, or a
//! node of its tree) whose seats carry a [`Filter`] (a subscriber's subscriptions and
//! grants, from the Mercure rules) and whose events carry their public id as a key and a
//! [`Route`] (topics, and whether the update is private), stored with them so that
//! replays, relays and resumes on any node filter too. What this module adds: the update's
//! wire form, the cursor a subscriber resumes from, the matchers' memory bound, and the
//! hub's errors.

use crate::protocol::{self, Event};

use super::announcer::Outlet;
use super::config::PublishAck;
use super::history::{EventId, EventLog, LogError};
use super::mercure::EARLIEST;
use super::stream::{Filter, Route};
use super::stream::{Stream, StreamSettings};

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
    /// An id longer than any update may have: none has it, so it is not looked up.
    Unknown,
}

impl Cursor {
    /// A subscriber's cursor as it sent it (§6.9): `earliest`, or an id; an id longer
    /// than `max_id_bytes`, the longest an update may have, is one no update has.
    pub fn parse(text: &str, max_id_bytes: usize) -> Cursor {
        match text {
            EARLIEST => Cursor::Earliest,
            id if id.len() > max_id_bytes => Cursor::Unknown,
            id => Cursor::After(id.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
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

/// Where a subscriber's stream starts, once its cursor is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The sequence number its stream goes on after (none: from now).
    pub after: Option<EventId>,
    /// The `Last-Event-ID` to answer with: the requested id when it is kept, else
    /// `earliest`; none when it asked for no cursor.
    pub last_event_id: Option<String>,
}

impl Resolved {
    /// The resume after `key`, found at `seq` (none: not kept, so from now).
    pub fn after_key(key: &str, seq: Option<EventId>) -> Self {
        Resolved {
            after: seq,
            last_event_id: Some(match seq {
                Some(_) => key.to_string(),
                None => EARLIEST.to_string(),
            }),
        }
    }
}

/// The engine's settings for the hub: every update is answered once it is stored.
pub fn settings(mut channel: StreamSettings) -> StreamSettings {
    channel.publish_ack = PublishAck::Stored;
    channel
}

/// The Mercure face on the stream engine: seats that filter by their subscriptions and
/// grants, events that carry their public id as a key, resumes by that key, with holes
/// left silent.
impl<O: Outlet, L: EventLog, S: Filter> Stream<O, L, S> {
    /// Stores an update in the hub's history (it is answered once stored); it goes out
    /// with the next [`Stream::flush`], to the seats that admit it.
    pub fn publish_update(&mut self, update: &HubUpdate, now_ms: u64) -> Result<(), HubError> {
        let frame = update.encode().map_err(HubError::Field)?;
        self.publish_routed(frame, update.id.clone(), update.route.clone(), now_ms)?;
        Ok(())
    }

    /// Whether `subscriber`'s matchers fit beside those of the subscribers seated here,
    /// all of them within `max_matcher_bytes`.
    pub fn admit(&mut self, subscriber: &S, max_matcher_bytes: usize) -> Result<(), HubError> {
        let fits = |stream: &Self| {
            let held: usize = stream.filters().map(S::footprint).sum();
            held.saturating_add(subscriber.footprint()) <= max_matcher_bytes
        };
        // Subscribers known to be gone hold nothing: removed before refusing.
        if !fits(self) {
            self.sweep();
        }
        if !fits(self) {
            return Err(HubError::MatchersFull {
                max: max_matcher_bytes,
            });
        }
        Ok(())
    }

    /// Where a subscriber with `cursor` starts: `earliest` after sequence 0, an id after
    /// its first kept occurrence, an unknown or expired id from now. None when this object
    /// (a node) does not keep the id: the root says ([`Resolved::after_key`]).
    pub fn resolve(
        &mut self,
        cursor: Option<&Cursor>,
        now_ms: u64,
    ) -> Result<Option<Resolved>, HubError> {
        Ok(Some(match cursor {
            None => Resolved {
                after: None,
                last_event_id: None,
            },
            Some(Cursor::Earliest) => Resolved {
                after: Some(EventId(0)),
                last_event_id: Some(EARLIEST.to_string()),
            },
            Some(Cursor::Unknown) => Resolved {
                after: None,
                last_event_id: Some(EARLIEST.to_string()),
            },
            Some(Cursor::After(key)) => match self.find_key(key, now_ms)? {
                None if !self.path().is_root() => return Ok(None),
                seq => Resolved::after_key(key, seq),
            },
        }))
    }

    /// The id of the newest update, while it is kept (the subscriptions API's
    /// `lastEventID`).
    pub fn last_event_id(&self) -> Result<Option<String>, LogError> {
        let before_newest = EventId(self.last_id().0.saturating_sub(1));
        Ok(self.log().after(before_newest)?.pop().and_then(|e| e.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::announcer::tests::TestOutlet;
    use crate::domain::history::{HistoryPolicy, MemoryLog, StoredEvent};
    use crate::domain::tree::TreeSettings;
    use crate::domain::SeatKind;
    use crate::protocol::Parser;

    /// A test subscriber: the topics it listens to, and whether it may see private updates.
    type Sub = crate::domain::stream::route::tests::Topics;

    type Hub = Stream<TestOutlet, MemoryLog, Sub>;

    const MATCHER_BYTES: usize = 1000;

    fn hub() -> Hub {
        let engine = StreamSettings {
            queue_capacity: 5,
            max_listeners: 10,
            retry_ms: 1000,
            history: HistoryPolicy {
                max_events: 100,
                max_age_ms: u64::MAX,
            },
            publish_ack: PublishAck::Accepted,
            tree: TreeSettings {
                listeners_per_object: 0,
                fanout: 2,
            },
        };
        Stream::new(settings(engine), MemoryLog::default())
    }

    /// Seats a subscriber on the root as the platform does: room, matchers, cursor, join.
    fn subscribe(
        h: &mut Hub,
        outlet: TestOutlet,
        subscriber: Sub,
        cursor: Option<&Cursor>,
    ) -> Result<Resolved, HubError> {
        assert!(h.has_room(), "the tests' hub has room");
        h.admit(&subscriber, MATCHER_BYTES)?;
        let resolved = h
            .resolve(cursor, 0)?
            .expect("the root resolves every cursor");
        h.join(SeatKind::Listener(subscriber), outlet, resolved.after, 0)
            .unwrap();
        Ok(resolved)
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
            subscribe(&mut h, o, heavy(401), None),
            Err(HubError::MatchersFull { max: 1000 })
        );
        let second = join(&mut h, heavy(400), None);
        h.publish_update(&update("a", &["books"], false), 1)
            .unwrap();
        h.flush();
        assert_eq!(ids(&first), ["a"]);
        assert_eq!(ids(&second), ["a"]);
        assert_eq!(h.listeners(), 2);
    }

    fn join(h: &mut Hub, s: Sub, cursor: Option<Cursor>) -> TestOutlet {
        let o = TestOutlet::default();
        subscribe(h, o.clone(), s, cursor.as_ref()).unwrap();
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
        h.publish_update(&update("a", &["books", "films"], false), 1)
            .unwrap();
        h.publish_update(&update("b", &["films"], true), 2).unwrap();
        h.publish_update(&update("c", &["music"], false), 3)
            .unwrap();
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
            h.publish_update(&update(id, topics, private), 1).unwrap();
        }
        let o = TestOutlet::default();
        let found = subscribe(
            &mut h,
            o.clone(),
            sub(&["x"], false),
            Some(&Cursor::Earliest),
        )
        .unwrap();
        assert_eq!(found.last_event_id.as_deref(), Some("earliest"));
        assert_eq!(ids(&o), ["1", "2", "5"]);
        // A private-granted subscriber resuming after an id: what it answers, what it got.
        let mut after = |id: &str| {
            let o = TestOutlet::default();
            let cursor = Cursor::After(id.into());
            let found = subscribe(&mut h, o.clone(), sub(&["x"], true), Some(&cursor)).unwrap();
            (found.last_event_id, ids(&o))
        };
        // A reused id resumes after its first occurrence.
        assert_eq!(
            after("2"),
            (Some("2".into()), vec!["3".into(), "2".into(), "5".into()])
        );
        // An unknown id replays nothing.
        assert_eq!(after("nope"), (Some("earliest".into()), vec![]));
        // No cursor: nothing replayed, no Last-Event-ID.
        assert_eq!(
            subscribe(&mut h, TestOutlet::default(), sub(&["x"], true), None)
                .unwrap()
                .last_event_id,
            None
        );
    }

    #[test]
    fn a_node_leaves_an_id_it_does_not_keep_to_the_root_and_resolves_the_rest_itself() {
        let mut root = hub();
        root.publish_update(&update("a", &["x"], false), 1).unwrap();
        let unknown = Cursor::After("nope".into());
        assert_eq!(
            root.resolve(Some(&unknown), 2).unwrap(),
            Some(Resolved::after_key("nope", None)),
            "the root keeps the whole history: an id it lacks is unknown"
        );
        assert_eq!(
            Resolved::after_key("nope", None).last_event_id.as_deref(),
            Some(EARLIEST)
        );
        let settings = *root.settings();
        let path = crate::domain::NodePath::parse("weur.0").unwrap();
        let mut node: Hub = Stream::relayed(settings, path, MemoryLog::default());
        assert_eq!(node.resolve(Some(&unknown), 2).unwrap(), None);
        let a = Cursor::After("a".into());
        assert_eq!(
            node.resolve(Some(&a), 2).unwrap(),
            None,
            "not relayed here yet"
        );
        assert_eq!(
            node.resolve(Some(&Cursor::Earliest), 2).unwrap(),
            Some(Resolved {
                after: Some(EventId(0)),
                last_event_id: Some(EARLIEST.into())
            })
        );
        assert_eq!(
            node.resolve(None, 2).unwrap(),
            Some(Resolved {
                after: None,
                last_event_id: None
            })
        );
    }

    #[test]
    fn an_update_that_lost_its_route_is_no_ones_in_a_replay_and_between_objects() {
        // A kept update whose route did not reach storage (its key row was lost).
        let mut log = MemoryLog::default();
        let mut bare = StoredEvent::new(EventId(1), 1, "id: secret\ndata: s\n\n".into());
        bare.key = Some("secret".into());
        log.append(&[bare]).unwrap();
        let mut h: Hub = Stream::new(*hub().settings(), log);
        h.publish_update(&update("open", &["x"], false), 2).unwrap();
        let o = join(&mut h, sub(&["x"], true), Some(Cursor::Earliest));
        assert_eq!(ids(&o), ["open"], "never everyone's");
        // A node's stream from above: a frame that does not say its sequence number is
        // skipped, its publisher's id never taken for one.
        let path = crate::domain::NodePath::parse("weur").unwrap();
        let mut node: Hub = Stream::relayed(*h.settings(), path, MemoryLog::default());
        node.relay_started(EventId(0), None);
        let seen = join(&mut node, sub(&["x"], true), None);
        let stream = "id: 42\ndata: unrouted\n\n";
        node.ingest(
            &crate::protocol::FrameReader::new().feed(stream.as_bytes()),
            3,
        );
        node.flush();
        assert_eq!(ids(&seen), Vec::<String>::new());
        assert_eq!(node.last_id(), EventId(0));
    }

    #[test]
    fn a_cursor_is_earliest_an_id_or_one_too_long_for_any_update() {
        assert_eq!(Cursor::parse("earliest", 8), Cursor::Earliest);
        assert_eq!(
            Cursor::parse("12345678", 8),
            Cursor::After("12345678".into())
        );
        assert_eq!(Cursor::parse("123456789", 8), Cursor::Unknown);
        let mut h = hub();
        h.publish_update(&update("a", &["x"], false), 1).unwrap();
        let o = join(&mut h, sub(&["x"], false), Some(Cursor::Unknown));
        assert_eq!(ids(&o), Vec::<String>::new(), "from now, as an unknown id");
        h.publish_update(&update("b", &["x"], false), 2).unwrap();
        h.flush();
        assert_eq!(ids(&o), ["b"]);
        assert_eq!(
            h.resolve(Some(&Cursor::Unknown), 3).unwrap(),
            Some(Resolved::after_key("x", None))
        );
    }

    #[test]
    fn updates_published_while_a_subscriber_joins_arrive_once() {
        let mut h = hub();
        h.publish_update(&update("a", &["x"], false), 1).unwrap();
        let resuming = join(&mut h, sub(&["x"], false), Some(Cursor::Earliest));
        h.publish_update(&update("b", &["x"], false), 2).unwrap();
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
        assert_eq!(h.listeners(), 1);
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
