//! A channel: its listeners, its ids and history, and its counters. One channel is what
//! one Durable Object hosts; everything here runs to completion without awaiting, so no
//! event can slip between a resume's replay and the live stream.

use serde_json::{json, Value};

use crate::protocol;

use super::announcer::{Announcer, Fanout, Outlet};
use super::config::{Config, PublishAck};
use super::history::{plan_resume, EventId, EventLog, HistoryPolicy, LogError, StoredEvent};
use super::message::Message;

/// The event type a resuming listener gets when part of what it missed is no longer kept.
pub const GAP_EVENT_TYPE: &str = "gap";

/// The comment written as a heartbeat.
pub const HEARTBEAT_COMMENT: &str = "keep-alive";

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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub published: u64,
    pub delivered: u64,
    pub dropped_slow: u64,
    pub dropped_gone: u64,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeError {
    /// The channel already has its maximum number of listeners.
    TooManyListeners { max: usize },
    /// The history to replay could not be read.
    Log(LogError),
}

pub struct Channel<O: Outlet, L: EventLog> {
    settings: ChannelSettings,
    announcer: Announcer<O>,
    log: L,
    counters: Counters,
    /// Encoded events published since the last flush: written to every listener as one chunk.
    batch: String,
    batch_events: u64,
    /// Events accepted but not stored yet (`PublishAck::Accepted`): stored at the flush.
    unstored: Vec<StoredEvent>,
    /// A storage failure met while flushing, for the platform to report.
    store_error: Option<LogError>,
    last_id: EventId,
}

impl<O: Outlet, L: EventLog> Channel<O, L> {
    pub fn new(settings: ChannelSettings, log: L) -> Self {
        Channel {
            announcer: Announcer::new(settings.queue_capacity),
            settings,
            counters: Counters::default(),
            batch: String::new(),
            batch_events: 0,
            unstored: Vec::new(),
            store_error: None,
            last_id: log.last_id(),
            log,
        }
    }

    pub fn listeners(&self) -> usize {
        self.announcer.len()
    }

    /// Gives the message the next id and keeps it in history (at once, or with the flush
    /// under `PublishAck::Accepted`); it goes out to the listeners with the next
    /// [`Channel::flush`], together with everything else published by then.
    pub fn publish(&mut self, message: &Message, now_ms: u64) -> Result<Published, LogError> {
        let id = self.last_id.next();
        let event = StoredEvent {
            id,
            at_ms: now_ms,
            frame: message.to_event(id).encode(),
        };
        self.batch.push_str(&event.frame);
        self.batch_events += 1;
        match self.settings.publish_ack {
            PublishAck::Stored => {
                if let Err(e) = self.log.append(&event) {
                    // Not kept, so not sent either, and its id is given to the next one.
                    self.batch.truncate(self.batch.len() - event.frame.len());
                    self.batch_events -= 1;
                    return Err(e);
                }
                self.settings.history.apply(&mut self.log, now_ms);
            }
            PublishAck::Accepted => self.unstored.push(event),
        }
        self.last_id = id;
        self.counters.published += 1;
        Ok(Published {
            id,
            listeners: self.announcer.len(),
        })
    }

    /// Writes every event published since the last flush to every listener, as one chunk
    /// encoded once and shared.
    pub fn flush(&mut self) -> Fanout {
        if self.batch_events == 0 {
            return Fanout::default();
        }
        // Stored before anyone sees them: a listener can always resume what it was sent.
        if let Some(last) = self.unstored.last() {
            let now_ms = last.at_ms;
            for event in self.unstored.drain(..) {
                if let Err(e) = self.log.append(&event) {
                    self.store_error = Some(e);
                }
            }
            self.settings.history.apply(&mut self.log, now_ms);
        }
        let chunk = O::chunk(&self.batch);
        let fanout = self.announcer.announce(&chunk);
        self.counters.delivered += fanout.delivered as u64 * self.batch_events;
        self.counters.dropped_slow += fanout.slow as u64;
        self.counters.dropped_gone += fanout.gone as u64;
        self.batch.clear();
        self.batch_events = 0;
        fanout
    }

    /// A storage failure met while flushing, if any (each is reported once).
    pub fn take_store_error(&mut self) -> Option<LogError> {
        self.store_error.take()
    }

    /// Starts a listener: writes the `retry:` field and, when it resumes after `last_seen`,
    /// the gap notice and the kept events it missed, as one chunk; then adds it.
    pub fn subscribe(
        &mut self,
        mut outlet: O,
        last_seen: Option<EventId>,
    ) -> Result<(), SubscribeError> {
        // Those already listening get what is pending first; the newcomer gets it from
        // history (or not at all when it did not ask to resume): never twice, never lost.
        self.flush();
        if self.announcer.len() >= self.settings.max_listeners {
            self.counters.dropped_gone += self.announcer.sweep() as u64;
            if self.announcer.len() >= self.settings.max_listeners {
                return Err(SubscribeError::TooManyListeners {
                    max: self.settings.max_listeners,
                });
            }
        }
        let mut start = protocol::retry(self.settings.retry_ms);
        if let Some(last_seen) = last_seen {
            let plan = plan_resume(&self.log, last_seen).map_err(SubscribeError::Log)?;
            if let Some(gap) = plan.gap {
                let notice = json!({
                    "lastEventId": gap.last_event_id.to_string(),
                    "firstAvailableId": gap.first_available_id.map(|id| id.to_string()),
                });
                let event = protocol::Event::new(notice.to_string())
                    .with_type(GAP_EVENT_TYPE)
                    .expect("the gap type is a valid event type");
                event.encode_into(&mut start);
            }
            for event in plan.replay {
                start.push_str(&event.frame);
            }
        }
        outlet.write(&O::chunk(&start));
        self.announcer.add(outlet, 1);
        Ok(())
    }

    /// Writes a heartbeat to every listener, cuts those that stopped reading, and applies
    /// the history's age limit.
    pub fn heartbeat(&mut self, now_ms: u64) {
        self.flush();
        let fanout = self
            .announcer
            .heartbeat(&O::chunk(&protocol::comment(HEARTBEAT_COMMENT)));
        self.counters.dropped_slow += fanout.slow as u64;
        self.counters.dropped_gone += fanout.gone as u64;
        self.settings.history.apply(&mut self.log, now_ms);
    }

    /// Counters and sizes, after removing listeners known to be gone.
    pub fn stats(&mut self) -> Value {
        self.flush();
        self.counters.dropped_gone += self.announcer.sweep() as u64;
        let last_id = self.last_id;
        json!({
            "listeners": self.announcer.len(),
            "published": self.counters.published,
            "delivered": self.counters.delivered,
            "droppedSlow": self.counters.dropped_slow,
            "droppedGone": self.counters.dropped_gone,
            "lastId": (last_id.0 > 0).then(|| last_id.to_string()),
            "historyLength": self.log.len(),
        })
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn log(&self) -> &L {
        &self.log
    }
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
        ch.subscribe(o.clone(), last.map(EventId)).unwrap();
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
        let log = std::mem::take(&mut ch.log);
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
        assert_eq!(ch.stats()["lastId"], "2");
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
    fn too_many_listeners_is_refused_after_sweeping_the_gone() {
        let mut ch = Channel::new(settings(5, 10), MemoryLog::default());
        let outlets: Vec<_> = (0..3).map(|_| listen(&mut ch, None)).collect();
        assert_eq!(
            ch.subscribe(TestOutlet::default(), None),
            Err(SubscribeError::TooManyListeners { max: 3 })
        );
        outlets[0].0.borrow_mut().gone = true;
        assert!(ch.subscribe(TestOutlet::default(), None).is_ok());
    }

    #[test]
    fn stats_add_up() {
        let mut ch = Channel::new(settings(5, 2), MemoryLog::default());
        let a = listen(&mut ch, None);
        let _b = listen(&mut ch, None);
        for i in 1..=3 {
            ch.publish(&msg("x"), i).unwrap();
        }
        ch.flush();
        a.0.borrow_mut().gone = true;
        let s = ch.stats();
        assert_eq!(s["listeners"], 1);
        assert_eq!(s["published"], 3);
        assert_eq!(s["delivered"], 6);
        assert_eq!(s["lastId"], "3");
        assert_eq!(s["historyLength"], 2);
    }
}
