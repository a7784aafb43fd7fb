//! A channel: its listeners, its ids and history, and its counters. One channel is what
//! one Durable Object hosts; everything here runs to completion without awaiting, so no
//! event can slip between a resume's replay and the live stream.
//!
//! Its state, piece by piece:
//! - the [`Announcer`] holds the listeners and their bounded queues;
//! - the [`EventLog`] keeps the history and the high-water mark of ids;
//! - the [`Outbox`] holds what was published since the last flush, to go out as one write;
//! - the [`Counters`] count what happened, and [`ChannelStats`] is what is reported.

use serde_json::{json, Value};

use crate::protocol;

use super::announcer::{Announcer, Fanout, Outlet};
use super::config::{Config, PublishAck};
use super::history::{
    plan_resume, EventId, EventLog, Gap, HistoryPolicy, LogError, Replay, StoredEvent,
};
use super::message::{Message, GAP_EVENT_TYPE};

/// The comment written at every keep-alive.
pub const KEEP_ALIVE_COMMENT: &str = "keep-alive";

/// Under `PublishAck::Accepted`, ids are reserved this many at a time: a publish is
/// answered before its event is stored, so the high-water mark is raised (durably, one
/// write per this many publishes) ahead of the ids handed out. After a crash, ids go on
/// above the reservation, and a listener resuming across the skipped ids gets `gap`.
pub const ID_RESERVATION: u64 = 1000;

/// The settings of [`Config`] that a channel uses.
#[derive(Debug, Clone, Copy)]
pub struct ChannelSettings {
    pub queue_capacity: usize,
    pub max_listeners: usize,
    pub retry_ms: u64,
    pub history: HistoryPolicy,
    pub publish_ack: PublishAck,
}

impl From<&Config> for ChannelSettings {
    fn from(c: &Config) -> Self {
        ChannelSettings {
            queue_capacity: c.queue_capacity,
            max_listeners: c.max_listeners,
            retry_ms: c.retry_ms,
            history: HistoryPolicy {
                max_events: c.history_size,
                max_age_ms: c.history_max_age_ms,
            },
            publish_ack: c.publish_ack,
        }
    }
}

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

/// What `GET /channels/{name}` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelStats {
    pub listeners: usize,
    pub counters: Counters,
    /// The last id given out (0: none yet).
    pub last_id: EventId,
    pub history_length: u64,
}

impl ChannelStats {
    pub fn to_json(&self, channel: &str) -> Value {
        json!({
            "channel": channel,
            "listeners": self.listeners,
            "published": self.counters.published,
            "delivered": self.counters.delivered,
            "droppedSlow": self.counters.dropped_slow,
            "droppedGone": self.counters.dropped_gone,
            "lastId": (self.last_id.0 > 0).then(|| self.last_id.to_string()),
            "historyLength": self.history_length,
        })
    }
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub id: EventId,
    /// Listeners the event is going to.
    pub listeners: usize,
}

impl Published {
    pub fn to_json(&self) -> Value {
        json!({ "id": self.id.to_string(), "listeners": self.listeners })
    }
}

/// What a batch publish did: its events have the ids `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishedBatch {
    pub first: EventId,
    pub last: EventId,
    pub listeners: usize,
}

impl PublishedBatch {
    pub fn to_json(&self) -> Value {
        json!({
            "firstId": self.first.to_string(),
            "lastId": self.last.to_string(),
            "count": self.last.0 + 1 - self.first.0,
            "listeners": self.listeners,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeError {
    /// The channel already has its maximum number of listeners.
    TooManyListeners { max: usize },
    /// The history to replay could not be read.
    Log(LogError),
}

impl std::fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubscribeError::TooManyListeners { max } => {
                write!(f, "channel has its maximum of {max} listeners")
            }
            SubscribeError::Log(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SubscribeError {}

/// Events published since the last flush. Each is stored (or, under
/// `PublishAck::Accepted`, has its id reserved) before it is put here, so nothing put
/// here is ever taken back.
#[derive(Debug, Default)]
struct Outbox {
    /// Their frames, concatenated: written to every listener as one chunk.
    frames: String,
    events: u64,
    /// Those not stored yet: stored at the flush, before anyone sees them.
    unstored: Vec<StoredEvent>,
}

impl Outbox {
    fn push(&mut self, event: StoredEvent, stored: bool) {
        self.frames.push_str(&event.frame);
        self.events += 1;
        if !stored {
            self.unstored.push(event);
        }
    }

    fn is_empty(&self) -> bool {
        self.events == 0
    }
}

pub struct Channel<O: Outlet, L: EventLog> {
    settings: ChannelSettings,
    announcer: Announcer<O>,
    log: L,
    outbox: Outbox,
    counters: Counters,
    /// The last id given out.
    last_id: EventId,
    /// Publishes since the last keep-alive (an idle channel releases its id reservation).
    published_since_keep_alive: u64,
    /// A storage failure met after a publish was answered, for the platform to report.
    store_error: Option<LogError>,
}

impl<O: Outlet, L: EventLog> Channel<O, L> {
    pub fn new(settings: ChannelSettings, log: L) -> Self {
        Channel {
            announcer: Announcer::new(settings.queue_capacity),
            settings,
            outbox: Outbox::default(),
            counters: Counters::default(),
            last_id: log.high_water(),
            published_since_keep_alive: 0,
            store_error: None,
            log,
        }
    }

    pub fn listeners(&self) -> usize {
        self.announcer.len()
    }

    /// Gives the message the next id and makes it durable as the acknowledgement mode
    /// says (stored, or its id reserved); it goes out to the listeners with the next
    /// [`Channel::flush`], together with everything else published by then. On an error
    /// nothing changed: the id was not given out.
    pub fn publish(&mut self, message: &Message, now_ms: u64) -> Result<Published, LogError> {
        let batch = self.publish_batch(std::slice::from_ref(message), now_ms)?;
        Ok(Published {
            id: batch.last,
            listeners: batch.listeners,
        })
    }

    /// Publishes messages together: consecutive ids, stored at once (all or none), and
    /// sent with the next flush as part of one write per listener.
    pub fn publish_batch(
        &mut self,
        messages: &[Message],
        now_ms: u64,
    ) -> Result<PublishedBatch, LogError> {
        let first = self.last_id.next();
        let events: Vec<StoredEvent> = messages
            .iter()
            .zip(first.0..)
            .map(|(message, n)| {
                let id = EventId(n);
                StoredEvent::new(id, now_ms, message.to_event(id).encode())
            })
            .collect();
        let Some(last) = events.last().map(|e| e.id) else {
            return Ok(PublishedBatch {
                first,
                last: self.last_id,
                listeners: self.announcer.len(),
            });
        };
        let stored = match self.settings.publish_ack {
            PublishAck::Stored => {
                self.log.append(&events)?;
                self.apply_history(now_ms);
                true
            }
            PublishAck::Accepted => {
                if last > self.log.high_water() {
                    self.log.reserve(EventId(last.0 + ID_RESERVATION - 1))?;
                }
                false
            }
        };
        self.last_id = last;
        self.counters.published += events.len() as u64;
        self.published_since_keep_alive += events.len() as u64;
        for event in events {
            self.outbox.push(event, stored);
        }
        Ok(PublishedBatch {
            first,
            last,
            listeners: self.announcer.len(),
        })
    }

    /// Writes every event published since the last flush to every listener, as one chunk
    /// encoded once and shared.
    pub fn flush(&mut self) -> Fanout {
        if self.outbox.is_empty() {
            return Fanout::default();
        }
        let outbox = std::mem::take(&mut self.outbox);
        // Stored before anyone sees them: a listener can always resume what it was sent.
        // What cannot be stored is not sent either; its ids stay given, and a listener
        // resuming across them gets a gap.
        if let Some(last) = outbox.unstored.last() {
            let now_ms = last.at_ms;
            if let Err(e) = self.log.append(&outbox.unstored) {
                self.store_error = Some(e);
                return Fanout::default();
            }
            self.apply_history(now_ms);
        }
        let fanout = self
            .announcer
            .announce(&O::chunk(&outbox.frames), outbox.events);
        self.counters.record(fanout);
        fanout
    }

    /// A storage failure met after a publish was answered, if any (each is reported once).
    pub fn take_store_error(&mut self) -> Option<LogError> {
        self.store_error.take()
    }

    /// Whether a new listener would be accepted now (listeners known to be gone are
    /// removed first).
    pub fn has_room(&mut self) -> bool {
        if self.announcer.len() >= self.settings.max_listeners {
            let gone = self.announcer.sweep();
            self.counters.record_gone(gone);
        }
        self.announcer.len() < self.settings.max_listeners
    }

    /// Writes a keep-alive to every listener, so that the runtime finds out which clients
    /// are gone (a write to a vanished client fails); [`Channel::has_room`] then sees it.
    pub fn probe(&mut self) {
        self.flush();
        let fanout = self.announcer.announce(&keep_alive_chunk::<O>(), 0);
        self.counters.record(fanout);
    }

    /// Starts a listener: writes the `retry:` field and, when it resumes after `last_seen`,
    /// the gap notice and the kept events it missed, as one chunk; then adds it.
    pub fn subscribe(
        &mut self,
        mut outlet: O,
        last_seen: Option<EventId>,
        now_ms: u64,
    ) -> Result<(), SubscribeError> {
        // Those already listening get what is pending first; the newcomer gets it from
        // history (or not at all when it did not ask to resume): never twice, never lost.
        self.flush();
        if !self.has_room() {
            return Err(SubscribeError::TooManyListeners {
                max: self.settings.max_listeners,
            });
        }
        let mut start = protocol::retry(self.settings.retry_ms);
        if let Some(last_seen) = last_seen {
            // Nothing older than the age limit is replayed, however long since the last prune.
            self.settings
                .history
                .apply(&mut self.log, now_ms)
                .map_err(SubscribeError::Log)?;
            let plan =
                plan_resume(&self.log, last_seen, self.last_id).map_err(SubscribeError::Log)?;
            for step in plan.steps {
                match step {
                    Replay::Gap(gap) => gap_notice(&gap).encode_into(&mut start),
                    Replay::Event(event) => start.push_str(&event.frame),
                }
            }
        }
        outlet.write(&O::chunk(&start));
        self.announcer.add(outlet, (), 1);
        Ok(())
    }

    /// A keep-alive: writes a comment to every listener, cuts those that took nothing
    /// since the previous one, and applies the history's age limit. A channel that
    /// published nothing since the previous keep-alive releases its id reservation, so a
    /// restart while idle skips no ids.
    pub fn keep_alive(&mut self, now_ms: u64) {
        self.flush();
        let fanout = self.announcer.keep_alive(&keep_alive_chunk::<O>());
        self.counters.record(fanout);
        self.apply_history(now_ms);
        if self.published_since_keep_alive == 0 && self.log.high_water() > self.last_id {
            if let Err(e) = self.log.reserve(self.last_id) {
                self.store_error = Some(e);
            }
        }
        self.published_since_keep_alive = 0;
    }

    /// Counters and sizes, after removing listeners known to be gone and events past the
    /// history's limits.
    pub fn stats(&mut self, now_ms: u64) -> ChannelStats {
        self.flush();
        let gone = self.announcer.sweep();
        self.counters.record_gone(gone);
        self.apply_history(now_ms);
        ChannelStats {
            listeners: self.announcer.len(),
            counters: self.counters,
            last_id: self.last_id,
            history_length: self.log.len(),
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn log(&self) -> &L {
        &self.log
    }

    /// Applies the history policy; a failure is kept for the platform to report (the
    /// events it would have dropped stay a little longer).
    fn apply_history(&mut self, now_ms: u64) {
        if let Err(e) = self.settings.history.apply(&mut self.log, now_ms) {
            self.store_error = Some(e);
        }
    }
}

/// The `gap` event: no id (it is not part of the channel's sequence), and data saying
/// where the hole is.
fn gap_notice(gap: &Gap) -> protocol::Event {
    let notice = json!({
        "lastEventId": gap.last_event_id.to_string(),
        "firstAvailableId": gap.first_available_id.map(|id| id.to_string()),
    });
    protocol::Event::new(notice.to_string())
        .with_type(GAP_EVENT_TYPE)
        .expect("the gap type is a valid event type")
}

pub(crate) fn keep_alive_chunk<O: Outlet>() -> O::Chunk {
    O::chunk(&protocol::comment(KEEP_ALIVE_COMMENT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::announcer::tests::TestOutlet;
    use crate::domain::history::MemoryLog;
    use crate::protocol::Parser;

    fn settings(capacity: usize, history: u64) -> ChannelSettings {
        ChannelSettings {
            queue_capacity: capacity,
            max_listeners: 3,
            retry_ms: 1000,
            history: HistoryPolicy {
                max_events: history,
                max_age_ms: u64::MAX,
            },
            publish_ack: PublishAck::Stored,
        }
    }

    fn msg(data: &str) -> Message {
        Message {
            data: data.into(),
            event_type: None,
            retry_ms: None,
        }
    }

    fn listen(ch: &mut Channel<TestOutlet, MemoryLog>, last: Option<u64>) -> TestOutlet {
        let o = TestOutlet::default();
        ch.subscribe(o.clone(), last.map(EventId), 0).unwrap();
        o
    }

    fn events(o: &TestOutlet) -> Vec<(String, String, String)> {
        o.0.borrow_mut().read_all();
        Parser::parse_all(o.0.borrow().text().as_bytes())
            .into_iter()
            .map(|e| (e.last_event_id, e.event_type, e.data))
            .collect()
    }

    #[test]
    fn ids_increase_and_continue_from_the_log() {
        let mut ch = Channel::<TestOutlet, _>::new(settings(5, 10), MemoryLog::default());
        assert_eq!(ch.publish(&msg("a"), 1).unwrap().id, EventId(1));
        assert_eq!(ch.publish(&msg("b"), 2).unwrap().id, EventId(2));
        // A restart: a new channel over the same log continues the sequence.
        let log = ch.log().clone();
        let mut again = Channel::<TestOutlet, _>::new(settings(5, 10), log);
        assert_eq!(again.publish(&msg("c"), 3).unwrap().id, EventId(3));
    }

    #[test]
    fn stream_starts_with_retry_and_events_carry_ids() {
        let mut ch = Channel::new(settings(5, 10), MemoryLog::default());
        let o = listen(&mut ch, None);
        ch.publish(
            &Message {
                data: "x\ny".into(),
                event_type: Some("t".into()),
                retry_ms: None,
            },
            1,
        )
        .unwrap();
        ch.flush();
        let text =
            o.0.borrow()
                .queue
                .iter()
                .map(|c| c.to_string())
                .collect::<String>();
        assert!(text.starts_with("retry: 1000\n\n"), "{text}");
        assert_eq!(events(&o), [("1".into(), "t".into(), "x\ny".into())]);
    }

    #[test]
    fn resume_replays_then_goes_live_without_loss_or_duplicates() {
        let mut ch = Channel::new(settings(5, 100), MemoryLog::default());
        for i in 1..=50 {
            ch.publish(&msg(&format!("m{i}")), i).unwrap();
        }
        let o = listen(&mut ch, Some(20));
        ch.publish(&msg("m51"), 51).unwrap();
        ch.flush();
        let got: Vec<String> = events(&o).into_iter().map(|e| e.2).collect();
        let want: Vec<String> = (21..=51).map(|i| format!("m{i}")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn resume_before_history_starts_with_a_gap_event() {
        let mut ch = Channel::new(settings(5, 5), MemoryLog::default());
        for i in 1..=20 {
            ch.publish(&msg(&format!("m{i}")), i).unwrap();
        }
        let got = events(&listen(&mut ch, Some(3)));
        assert_eq!(got[0].1, "gap");
        assert_eq!(got[0].2, r#"{"firstAvailableId":"16","lastEventId":"3"}"#);
        assert_eq!(got[0].0, "", "the gap event carries no id");
        assert_eq!(
            got[1..].iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
            ["16", "17", "18", "19", "20"]
        );
    }

    #[test]
    fn slow_listener_is_closed_and_catches_up_by_resuming() {
        let mut ch = Channel::new(settings(5, 1000), MemoryLog::default());
        let fast = listen(&mut ch, None);
        let slow = listen(&mut ch, None);
        slow.0.borrow_mut().read_all(); // it took the retry field, then stops reading
        let mut fast_seen = Vec::new();
        for i in 1..=100 {
            ch.publish(&msg(&i.to_string()), i).unwrap();
            ch.flush();
            fast_seen.extend(events(&fast).into_iter().map(|e| e.2));
            fast.0.borrow_mut().received.clear();
        }
        assert_eq!(fast_seen.len(), 100, "the fast listener never stalls");
        assert!(slow.0.borrow().closed);
        // The slow client reads what was queued before the close, then resumes from its last id.
        let before: Vec<_> = events(&slow);
        let last = before.last().unwrap().0.parse().unwrap();
        let again = listen(&mut ch, Some(last));
        let mut all: Vec<String> = before.into_iter().map(|e| e.2).collect();
        all.extend(events(&again).into_iter().map(|e| e.2));
        assert_eq!(all, (1..=100).map(|i| i.to_string()).collect::<Vec<_>>());
        assert_eq!(ch.counters().dropped_slow, 1);
    }

    #[test]
    fn events_published_together_go_out_as_one_chunk() {
        let mut ch = Channel::new(settings(5, 100), MemoryLog::default());
        let o = listen(&mut ch, None);
        o.0.borrow_mut().read_all();
        for i in 1..=3 {
            assert_eq!(ch.publish(&msg(&format!("m{i}")), i).unwrap().listeners, 1);
        }
        assert!(
            o.0.borrow().queue.is_empty(),
            "nothing goes out before the flush"
        );
        assert_eq!(ch.flush().delivered, 1);
        assert_eq!(
            o.0.borrow().queue.len(),
            1,
            "one chunk for the three events"
        );
        assert_eq!(
            events(&o).into_iter().map(|e| e.2).collect::<Vec<_>>(),
            ["m1", "m2", "m3"]
        );
        assert_eq!(ch.counters().delivered, 3);
        assert_eq!(ch.flush(), Fanout::default());
    }

    #[test]
    fn a_listener_joining_before_a_flush_gets_pending_events_once() {
        let mut ch = Channel::new(settings(5, 100), MemoryLog::default());
        let early = listen(&mut ch, None);
        ch.publish(&msg("a"), 1).unwrap();
        // Resuming from 0 while "a" is pending: it comes from history, not again from the batch.
        let resuming = listen(&mut ch, Some(0));
        let live_only = listen(&mut ch, None);
        ch.publish(&msg("b"), 2).unwrap();
        ch.flush();
        let data = |o: &TestOutlet| events(o).into_iter().map(|e| e.2).collect::<Vec<_>>();
        assert_eq!(data(&early), ["a", "b"]);
        assert_eq!(data(&resuming), ["a", "b"]);
        assert_eq!(data(&live_only), ["b"]);
    }

    #[test]
    fn accepted_events_are_stored_at_the_flush_before_anyone_sees_them() {
        let mut ch = Channel::new(
            ChannelSettings {
                publish_ack: PublishAck::Accepted,
                ..settings(5, 100)
            },
            MemoryLog::default(),
        );
        let o = listen(&mut ch, None);
        assert_eq!(ch.publish(&msg("a"), 1).unwrap().id, EventId(1));
        assert_eq!(ch.publish(&msg("b"), 2).unwrap().id, EventId(2));
        assert!(ch.log().is_empty(), "not stored before the flush");
        assert_eq!(ch.stats(0).last_id, EventId(2));
        // stats flushed: both are stored and delivered.
        assert_eq!(ch.log().len(), 2);
        assert_eq!(
            events(&o).into_iter().map(|e| e.2).collect::<Vec<_>>(),
            ["a", "b"]
        );
        // A resume right after an accepted publish finds it in history.
        ch.publish(&msg("c"), 3).unwrap();
        let resumed = listen(&mut ch, Some(2));
        assert_eq!(
            events(&resumed)
                .into_iter()
                .map(|e| e.2)
                .collect::<Vec<_>>(),
            ["c"]
        );
        assert_eq!(ch.take_store_error(), None);
    }

    #[test]
    fn a_full_channel_removes_the_gone_before_refusing_a_newcomer() {
        let mut ch = Channel::new(settings(5, 10), MemoryLog::default());
        let outlets: Vec<_> = (0..3).map(|_| listen(&mut ch, None)).collect();
        assert_eq!(
            ch.subscribe(TestOutlet::default(), None, 0),
            Err(SubscribeError::TooManyListeners { max: 3 })
        );
        outlets[0].0.borrow_mut().gone = true;
        assert!(ch.subscribe(TestOutlet::default(), None, 0).is_ok());
    }

    #[test]
    fn stats_add_up_after_a_known_sequence() {
        let mut ch = Channel::new(settings(5, 2), MemoryLog::default());
        let a = listen(&mut ch, None);
        let _b = listen(&mut ch, None);
        for i in 1..=3 {
            ch.publish(&msg("x"), i).unwrap();
        }
        ch.flush();
        a.0.borrow_mut().gone = true;
        let s = ch.stats(3);
        assert_eq!(s.listeners, 1);
        assert_eq!(s.counters.published, 3);
        assert_eq!(s.counters.delivered, 6);
        assert_eq!(s.counters.dropped_gone, 1);
        assert_eq!(s.last_id, EventId(3));
        assert_eq!(s.history_length, 2);
        let json = s.to_json("news");
        assert_eq!(json["channel"], "news");
        assert_eq!(json["lastId"], "3");
        assert_eq!(json["droppedGone"], 1);
    }

    fn accepted(history: u64) -> ChannelSettings {
        ChannelSettings {
            publish_ack: PublishAck::Accepted,
            ..settings(5, history)
        }
    }

    fn gap_of(o: &TestOutlet) -> Option<String> {
        events(o)
            .into_iter()
            .find(|e| e.1 == GAP_EVENT_TYPE)
            .map(|e| e.2)
    }

    #[test]
    fn replay_never_serves_an_event_older_than_the_age_limit() {
        let mut ch = Channel::new(
            ChannelSettings {
                history: HistoryPolicy {
                    max_events: 100,
                    max_age_ms: 1000,
                },
                ..settings(5, 100)
            },
            MemoryLog::default(),
        );
        for i in 1..=5 {
            ch.publish(&msg(&format!("old{i}")), i).unwrap();
        }
        ch.publish(&msg("new"), 3000).unwrap();
        // Nothing was published or pruned since: the resume at 4000 still must not see them.
        let o = TestOutlet::default();
        ch.subscribe(o.clone(), Some(EventId(0)), 4000).unwrap();
        let got = events(&o);
        assert_eq!(
            gap_of(&o).as_deref(),
            Some(r#"{"firstAvailableId":"6","lastEventId":"0"}"#)
        );
        assert_eq!(
            got.iter()
                .filter(|e| e.1 != GAP_EVENT_TYPE)
                .map(|e| e.2.as_str())
                .collect::<Vec<_>>(),
            ["new"]
        );
        // All of it expired: a gap with nothing available, and nothing replayed.
        let o = TestOutlet::default();
        ch.subscribe(o.clone(), Some(EventId(2)), 9000).unwrap();
        assert_eq!(
            gap_of(&o).as_deref(),
            Some(r#"{"firstAvailableId":null,"lastEventId":"2"}"#)
        );
        assert_eq!(events(&o).len(), 1);
    }

    #[test]
    fn accepted_ids_are_reserved_ahead_so_a_crash_never_reuses_one() {
        let mut ch = Channel::<TestOutlet, _>::new(accepted(100), MemoryLog::default());
        for i in 1..=3 {
            ch.publish(&msg(&format!("m{i}")), i).unwrap();
        }
        ch.flush();
        assert_eq!(ch.log().high_water(), EventId(ID_RESERVATION));
        // Two more answered, then a crash before their flush: what survives is the log.
        ch.publish(&msg("lost4"), 4).unwrap();
        ch.publish(&msg("lost5"), 5).unwrap();
        let survived = ch.log().clone();
        assert_eq!(survived.len(), 3);
        let mut again = Channel::new(accepted(100), survived);
        let next = again.publish(&msg("after"), 6).unwrap().id;
        assert!(next > EventId(5), "id {next} was already handed out");
        assert_eq!(next, EventId(ID_RESERVATION + 1));
        again.flush();
        // A listener that saw 3, or one that saw a lost id, is told of the gap.
        for last_seen in [3, 5] {
            let o = TestOutlet::default();
            again
                .subscribe(o.clone(), Some(EventId(last_seen)), 7)
                .unwrap();
            assert!(gap_of(&o).is_some(), "resume after {last_seen}");
            assert_eq!(events(&o).last().unwrap().2, "after");
        }
        // One that saw the newest id resumes with no gap.
        let o = TestOutlet::default();
        again.subscribe(o.clone(), Some(next), 7).unwrap();
        assert_eq!(events(&o), []);
    }

    #[test]
    fn an_idle_channel_releases_its_reservation_so_a_clean_restart_skips_no_ids() {
        let mut ch = Channel::<TestOutlet, _>::new(accepted(100), MemoryLog::default());
        ch.publish(&msg("a"), 1).unwrap();
        ch.keep_alive(2); // published since the previous keep-alive: kept
        assert_eq!(ch.log().high_water(), EventId(ID_RESERVATION));
        ch.keep_alive(3); // idle for a whole keep-alive: released
        assert_eq!(ch.log().high_water(), EventId(1));
        let mut again = Channel::<TestOutlet, _>::new(accepted(100), ch.log().clone());
        assert_eq!(again.publish(&msg("b"), 4).unwrap().id, EventId(2));
    }

    /// A log whose appends fail while `.1` is set.
    #[derive(Default)]
    struct FailingLog(MemoryLog, bool);
    impl EventLog for FailingLog {
        fn high_water(&self) -> EventId {
            self.0.high_water()
        }
        fn oldest(&self) -> Option<(EventId, u64)> {
            self.0.oldest()
        }
        fn len(&self) -> u64 {
            self.0.len()
        }
        fn append(&mut self, events: &[StoredEvent]) -> Result<(), LogError> {
            if self.1 {
                return Err(LogError("disk full".into()));
            }
            self.0.append(events)
        }
        fn reserve(&mut self, through: EventId) -> Result<(), LogError> {
            self.0.reserve(through)
        }
        fn after(&self, after: EventId) -> Result<Vec<StoredEvent>, LogError> {
            self.0.after(after)
        }
        fn find(&self, key: &str) -> Result<Option<EventId>, LogError> {
            self.0.find(key)
        }
        fn prune(&mut self, oldest: u64, before_ms: u64) -> Result<(), LogError> {
            self.0.prune(oldest, before_ms)
        }
    }

    #[test]
    fn a_stored_publish_that_fails_gives_out_no_id_and_sends_nothing() {
        let mut ch = Channel::new(settings(5, 10), FailingLog::default());
        let o = TestOutlet::default();
        ch.subscribe(o.clone(), None, 0).unwrap();
        ch.publish(&msg("a"), 1).unwrap();
        ch.log.1 = true;
        assert!(ch.publish(&msg("b"), 2).is_err());
        ch.log.1 = false;
        assert_eq!(ch.publish(&msg("c"), 3).unwrap().id, EventId(2));
        ch.flush();
        assert_eq!(
            events(&o)
                .into_iter()
                .map(|e| (e.0, e.2))
                .collect::<Vec<_>>(),
            [("1".into(), "a".into()), ("2".into(), "c".into())]
        );
    }

    #[test]
    fn a_probe_lets_a_full_channel_find_clients_that_went_away() {
        let mut ch = Channel::new(settings(5, 10), MemoryLog::default());
        let outlets: Vec<_> = (0..3).map(|_| listen(&mut ch, None)).collect();
        assert!(!ch.has_room());
        // A client that reset its connection: the runtime only says so once written to.
        outlets[1].0.borrow_mut().fails_on_write = true;
        assert!(!ch.has_room(), "nothing was written yet");
        ch.probe();
        assert!(ch.has_room());
        assert_eq!(ch.listeners(), 2);
        assert!(outlets[0].0.borrow().queue.back().unwrap().starts_with(':'));
    }

    #[test]
    fn an_accepted_batch_that_cannot_be_stored_is_not_sent_and_resumes_see_a_gap() {
        let mut ch = Channel::new(accepted(100), FailingLog::default());
        let o = TestOutlet::default();
        ch.subscribe(o.clone(), None, 0).unwrap();
        ch.publish(&msg("a"), 1).unwrap();
        ch.flush();
        ch.log.1 = true;
        assert_eq!(ch.publish(&msg("b"), 2).unwrap().id, EventId(2));
        assert_eq!(ch.flush().delivered, 0);
        assert!(ch.take_store_error().is_some());
        ch.log.1 = false;
        ch.publish(&msg("c"), 3).unwrap();
        ch.flush();
        assert_eq!(
            events(&o).into_iter().map(|e| e.2).collect::<Vec<_>>(),
            ["a", "c"],
            "what could not be kept was not sent"
        );
        let resumed = TestOutlet::default();
        ch.subscribe(resumed.clone(), Some(EventId(1)), 4).unwrap();
        assert_eq!(
            gap_of(&resumed).as_deref(),
            Some(r#"{"firstAvailableId":"3","lastEventId":"1"}"#)
        );
    }

    #[test]
    fn a_batch_gets_consecutive_ids_is_stored_at_once_and_goes_out_as_one_write() {
        let mut ch = Channel::new(settings(5, 100), MemoryLog::default());
        let o = listen(&mut ch, None);
        o.0.borrow_mut().read_all();
        ch.publish(&msg("before"), 1).unwrap();
        let batch = ch
            .publish_batch(&[msg("a"), msg("b"), msg("c")], 2)
            .unwrap();
        assert_eq!((batch.first, batch.last), (EventId(2), EventId(4)));
        assert_eq!(batch.to_json()["count"], 3);
        assert_eq!(ch.log().len(), 4);
        ch.flush();
        assert_eq!(
            o.0.borrow().queue.len(),
            1,
            "one write for the publish and the batch"
        );
        assert_eq!(
            events(&o)
                .into_iter()
                .map(|e| (e.0, e.2))
                .collect::<Vec<_>>(),
            [
                ("1".into(), "before".into()),
                ("2".into(), "a".into()),
                ("3".into(), "b".into()),
                ("4".into(), "c".into())
            ]
        );
        // A resume from inside the batch gets the rest of it.
        let resumed = listen(&mut ch, Some(2));
        assert_eq!(
            events(&resumed)
                .into_iter()
                .map(|e| e.2)
                .collect::<Vec<_>>(),
            ["b", "c"]
        );
        assert_eq!(ch.counters().published, 4);
    }

    #[test]
    fn a_batch_that_cannot_be_stored_gives_out_no_id() {
        let mut ch = Channel::<TestOutlet, _>::new(settings(5, 10), FailingLog::default());
        ch.log.1 = true;
        assert!(ch.publish_batch(&[msg("a"), msg("b")], 1).is_err());
        ch.log.1 = false;
        let batch = ch.publish_batch(&[msg("c")], 2).unwrap();
        assert_eq!((batch.first, batch.last), (EventId(1), EventId(1)));
    }
}
