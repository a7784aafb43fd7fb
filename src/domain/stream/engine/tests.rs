//! A channel's root on its own: ids, resume, slow listeners, batches, acknowledgement.

use super::*;
use crate::domain::announcer::tests::TestOutlet;
use crate::domain::history::MemoryLog;
use crate::protocol::Parser;

pub(super) fn settings(capacity: usize, history: u64) -> StreamSettings {
    StreamSettings {
        queue_capacity: capacity,
        max_listeners: 3,
        retry_ms: 1000,
        history: HistoryPolicy {
            max_events: history,
            max_age_ms: u64::MAX,
        },
        publish_ack: PublishAck::Stored,
        tree: TreeSettings {
            listeners_per_object: 0,
            fanout: 2,
        },
    }
}

pub(super) fn msg(data: &str) -> Message {
    Message {
        data: data.into(),
        event_type: None,
        retry_ms: None,
    }
}

pub(super) fn listen(ch: &mut Stream<TestOutlet, MemoryLog>, last: Option<u64>) -> TestOutlet {
    let o = TestOutlet::default();
    ch.subscribe(o.clone(), last.map(EventId), 0).unwrap();
    o
}

pub(super) fn events(o: &TestOutlet) -> Vec<(String, String, String)> {
    o.0.borrow_mut().read_all();
    Parser::parse_all(o.0.borrow().text().as_bytes())
        .into_iter()
        .map(|e| (e.last_event_id, e.event_type, e.data))
        .collect()
}

/// The data of the events `o` received.
fn datas(o: &TestOutlet) -> Vec<String> {
    events(o).into_iter().map(|e| e.2).collect()
}

#[test]
fn ids_increase_and_continue_from_the_log() {
    let mut ch = Stream::<TestOutlet, _>::new(settings(5, 10), MemoryLog::default());
    assert_eq!(ch.publish(&msg("a"), 1).unwrap().id, EventId(1));
    assert_eq!(ch.publish(&msg("b"), 2).unwrap().id, EventId(2));
    // A restart: a new channel over the same log continues the sequence.
    let log = ch.log().clone();
    let mut again = Stream::<TestOutlet, _>::new(settings(5, 10), log);
    assert_eq!(again.publish(&msg("c"), 3).unwrap().id, EventId(3));
}

#[test]
fn stream_starts_with_retry_and_events_carry_ids() {
    let mut ch: Stream<_, _> = Stream::new(settings(5, 10), MemoryLog::default());
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
    let mut ch: Stream<_, _> = Stream::new(settings(5, 100), MemoryLog::default());
    for i in 1..=50 {
        ch.publish(&msg(&format!("m{i}")), i).unwrap();
    }
    let o = listen(&mut ch, Some(20));
    ch.publish(&msg("m51"), 51).unwrap();
    ch.flush();
    let got = datas(&o);
    let want: Vec<String> = (21..=51).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
}

#[test]
fn resume_before_history_starts_with_a_gap_event() {
    let mut ch: Stream<_, _> = Stream::new(settings(5, 5), MemoryLog::default());
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
    let mut ch: Stream<_, _> = Stream::new(settings(5, 1000), MemoryLog::default());
    let fast = listen(&mut ch, None);
    let slow = listen(&mut ch, None);
    slow.0.borrow_mut().read_all(); // it took the retry field, then stops reading
    let mut fast_seen = Vec::new();
    for i in 1..=100 {
        ch.publish(&msg(&i.to_string()), i).unwrap();
        ch.flush();
        fast_seen.extend(datas(&fast));
        fast.0.borrow_mut().received.clear();
    }
    assert_eq!(fast_seen.len(), 100, "the fast listener never stalls");
    assert!(slow.0.borrow().closed);
    // The slow client reads what was queued before the close, then resumes from its last id.
    let before: Vec<_> = events(&slow);
    let last = before.last().unwrap().0.parse().unwrap();
    let again = listen(&mut ch, Some(last));
    let mut all: Vec<String> = before.into_iter().map(|e| e.2).collect();
    all.extend(datas(&again));
    assert_eq!(all, (1..=100).map(|i| i.to_string()).collect::<Vec<_>>());
    assert_eq!(ch.counters().dropped_slow, 1);
}

#[test]
fn events_published_together_go_out_as_one_chunk() {
    let mut ch: Stream<_, _> = Stream::new(settings(5, 100), MemoryLog::default());
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
    assert_eq!(datas(&o), ["m1", "m2", "m3"]);
    assert_eq!(ch.counters().delivered, 3);
    assert_eq!(ch.flush(), Fanout::default());
}

#[test]
fn a_listener_joining_before_a_flush_gets_pending_events_once() {
    let mut ch: Stream<_, _> = Stream::new(settings(5, 100), MemoryLog::default());
    let early = listen(&mut ch, None);
    ch.publish(&msg("a"), 1).unwrap();
    // Resuming from 0 while "a" is pending: it comes from history, not again from the batch.
    let resuming = listen(&mut ch, Some(0));
    let live_only = listen(&mut ch, None);
    ch.publish(&msg("b"), 2).unwrap();
    ch.flush();
    assert_eq!(datas(&early), ["a", "b"]);
    assert_eq!(datas(&resuming), ["a", "b"]);
    assert_eq!(datas(&live_only), ["b"]);
}

#[test]
fn accepted_events_are_stored_at_the_flush_before_anyone_sees_them() {
    let mut ch: Stream<_, _> = Stream::new(
        StreamSettings {
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
    assert_eq!(datas(&o), ["a", "b"]);
    // A resume right after an accepted publish finds it in history.
    ch.publish(&msg("c"), 3).unwrap();
    let resumed = listen(&mut ch, Some(2));
    assert_eq!(datas(&resumed), ["c"]);
    assert_eq!(ch.take_store_error(), None);
}

#[test]
fn a_full_channel_removes_the_gone_before_refusing_a_newcomer() {
    let mut ch: Stream<_, _> = Stream::new(settings(5, 10), MemoryLog::default());
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
    let mut ch: Stream<_, _> = Stream::new(settings(5, 2), MemoryLog::default());
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
    assert_eq!(
        StreamStats::from_json(&json),
        Some(s),
        "between objects, read back whole"
    );
    let hub = s.to_hub_json();
    assert_eq!(hub["subscribers"], 1);
    assert_eq!(hub["delivered"], 6);
    assert_eq!(
        hub.get("lastId"),
        None,
        "a hub's sequence numbers are never shown"
    );
    assert_eq!(hub.get("channel"), None);
}

fn accepted(history: u64) -> StreamSettings {
    StreamSettings {
        publish_ack: PublishAck::Accepted,
        ..settings(5, history)
    }
}

pub(super) fn gap_of(o: &TestOutlet) -> Option<String> {
    events(o)
        .into_iter()
        .find(|e| e.1 == GAP_EVENT_TYPE)
        .map(|e| e.2)
}

#[test]
fn replay_never_serves_an_event_older_than_the_age_limit() {
    let mut ch: Stream<_, _> = Stream::new(
        StreamSettings {
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
    let mut ch = Stream::<TestOutlet, _>::new(accepted(100), MemoryLog::default());
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
    let mut again: Stream<_, _> = Stream::new(accepted(100), survived);
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
    let mut ch = Stream::<TestOutlet, _>::new(accepted(100), MemoryLog::default());
    ch.publish(&msg("a"), 1).unwrap();
    ch.keep_alive(2); // published since the previous keep-alive: kept
    assert_eq!(ch.log().high_water(), EventId(ID_RESERVATION));
    ch.keep_alive(3); // idle for a whole keep-alive: released
    assert_eq!(ch.log().high_water(), EventId(1));
    let mut again = Stream::<TestOutlet, _>::new(accepted(100), ch.log().clone());
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
    fn newest_at(&self) -> Option<u64> {
        self.0.newest_at()
    }
    fn ending(&self) -> Option<crate::domain::Ending> {
        self.0.ending()
    }
    fn end(&mut self, ending: crate::domain::Ending) -> Result<(), LogError> {
        if self.1 {
            return Err(LogError("disk full".into()));
        }
        self.0.end(ending)
    }
}

#[test]
fn a_stored_publish_that_fails_gives_out_no_id_and_sends_nothing() {
    let mut ch: Stream<_, _> = Stream::new(settings(5, 10), FailingLog::default());
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
    let mut ch: Stream<_, _> = Stream::new(settings(5, 10), MemoryLog::default());
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
    let mut ch: Stream<_, _> = Stream::new(accepted(100), FailingLog::default());
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
    assert_eq!(datas(&o), ["a", "c"], "what could not be kept was not sent");
    let resumed = TestOutlet::default();
    ch.subscribe(resumed.clone(), Some(EventId(1)), 4).unwrap();
    assert_eq!(
        gap_of(&resumed).as_deref(),
        Some(r#"{"firstAvailableId":"3","lastEventId":"1"}"#)
    );
}

#[test]
fn a_batch_gets_consecutive_ids_is_stored_at_once_and_goes_out_as_one_write() {
    let mut ch: Stream<_, _> = Stream::new(settings(5, 100), MemoryLog::default());
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
    assert_eq!(datas(&resumed), ["b", "c"]);
    assert_eq!(ch.counters().published, 4);
}

#[test]
fn a_batch_that_cannot_be_stored_gives_out_no_id() {
    let mut ch = Stream::<TestOutlet, _>::new(settings(5, 10), FailingLog::default());
    ch.log.1 = true;
    assert!(ch.publish_batch(&[msg("a"), msg("b")], 1).is_err());
    ch.log.1 = false;
    let batch = ch.publish_batch(&[msg("c")], 2).unwrap();
    assert_eq!((batch.first, batch.last), (EventId(1), EventId(1)));
}

// The tree: a root and nodes below it, wired as the platform wires them, in memory.
