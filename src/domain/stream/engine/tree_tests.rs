//! A channel's tree: nodes below the root relaying its stream, resumes held or asked up.

use super::tests::{events, gap_of, listen, msg, settings};
use super::*;
use crate::domain::announcer::tests::TestOutlet;
use crate::domain::history::MemoryLog;

pub(super) type Node<F = Everyone> = Stream<TestOutlet, MemoryLog, F>;

pub(super) fn tree_settings(history: u64) -> StreamSettings {
    StreamSettings {
        max_listeners: 100,
        // Listeners here read only when a test looks: never cut as slow.
        queue_capacity: 10_000,
        ..settings(5, history)
    }
}

/// A node below the root, its relay seat on `parent`, and the reader of that stream.
pub(super) struct Below<F: Filter = Everyone> {
    pub(super) node: Node<F>,
    relay: TestOutlet,
    reader: protocol::FrameReader,
}

impl<F: Filter + Clone> Below<F> {
    pub(super) fn join(parent: &mut Node<F>, path: &str, history: u64) -> Below<F> {
        Below::start(parent, path, tree_settings(history), None, 0)
    }

    /// A fresh node below `parent`, its stream from it starting after `seed` (from now
    /// when none), as the platform starts one.
    pub(super) fn start(
        parent: &mut Node<F>,
        path: &str,
        settings: StreamSettings,
        seed: Option<EventId>,
        now_ms: u64,
    ) -> Below<F> {
        let path = NodePath::parse(path).unwrap();
        let mut node = Stream::relayed(settings, path.clone(), MemoryLog::default());
        let relay = TestOutlet::default();
        let position = parent
            .join(SeatKind::Relay(path), relay.clone(), seed, now_ms)
            .unwrap();
        node.relay_started(position, seed);
        Below {
            node,
            relay,
            reader: protocol::FrameReader::new(),
        }
    }

    /// Takes a new stream from `parent`, resuming after the last id relayed, as the
    /// platform does when the old one ends (the parent must hold the resume).
    pub(super) fn resume(&mut self, parent: &mut Node<F>, now_ms: u64) {
        self.relay = TestOutlet::default();
        self.reader.end_of_stream();
        let seat = SeatKind::Relay(self.node.path().clone());
        let last = Some(self.node.last_id());
        let position = parent.join(seat, self.relay.clone(), last, now_ms).unwrap();
        self.node.relay_started(position, last);
    }

    /// As [`Below::resume`], with the replay asked of `above` when the parent does not
    /// hold the resume, as the platform asks up.
    pub(super) fn resume_asking(&mut self, parent: &mut Node<F>, above: &mut Node<F>, now_ms: u64) {
        self.relay = TestOutlet::default();
        self.reader.end_of_stream();
        let seat = SeatKind::Relay(self.node.path().clone());
        let last = self.node.last_id();
        let position = match parent.join(seat.clone(), self.relay.clone(), Some(last), now_ms) {
            Err(SubscribeError::NotCovered) => {
                let through = parent.holds_through();
                let (replay, upstream) = above.replay(last, through, now_ms).unwrap();
                parent
                    .join_replayed(seat, self.relay.clone(), &replay, upstream, through, now_ms)
                    .unwrap()
            }
            joined => joined.unwrap(),
        };
        self.node.relay_started(position, Some(last));
    }

    /// Takes what the parent has written on the relay, and sends it on.
    pub(super) fn pump(&mut self, now_ms: u64) {
        let mut client = self.relay.0.borrow_mut();
        let chunks: Vec<_> = client.queue.drain(..).collect();
        drop(client);
        for chunk in chunks {
            let frames = self.reader.feed(chunk.as_bytes());
            self.node.ingest(&frames, now_ms);
        }
        self.node.flush();
    }
}

fn ids_of(o: &TestOutlet) -> Vec<u64> {
    events(o)
        .into_iter()
        .filter(|e| e.1 != GAP_EVENT_TYPE)
        .map(|e| e.0.parse().unwrap())
        .collect()
}

fn publish_n(root: &mut Node, range: std::ops::RangeInclusive<u64>) {
    for i in range {
        root.publish(&msg(&format!("m{i}")), i).unwrap();
    }
    root.flush();
}

#[test]
fn listeners_below_the_root_see_the_roots_ids_in_its_order() {
    let mut root: Stream<_, _> = Stream::new(tree_settings(100), MemoryLog::default());
    let on_root = listen(&mut root, None);
    let mut head = Below::join(&mut root, "weur", 100);
    let mut leaf = Below::join(&mut head.node, "weur.0", 100);
    let on_leaf = TestOutlet::default();
    leaf.node.subscribe(on_leaf.clone(), None, 0).unwrap();
    publish_n(&mut root, 1..=3);
    root.publish_batch(&[msg("b1"), msg("b2")], 4).unwrap();
    root.flush();
    head.pump(5);
    leaf.pump(5);
    assert_eq!(ids_of(&on_root), [1, 2, 3, 4, 5]);
    assert_eq!(events(&on_leaf), events(&on_root));
    assert_eq!(root.relays(), 1);
    assert_eq!(
        head.node.relay_children(),
        [NodePath::parse("weur.0").unwrap()]
    );
}

#[test]
fn a_resume_below_the_root_is_answered_there_or_from_above_without_loss_or_doubles() {
    let mut root: Stream<_, _> = Stream::new(tree_settings(100), MemoryLog::default());
    publish_n(&mut root, 1..=5);
    let mut leaf = Below::join(&mut root, "oc", 100);
    publish_n(&mut root, 6..=9);
    leaf.pump(9);
    // Held here: after 7.
    let near = TestOutlet::default();
    leaf.node
        .subscribe(near.clone(), Some(EventId(7)), 9)
        .unwrap();
    assert_eq!(ids_of(&near), [8, 9]);
    // Before what this node holds: the replay comes from the root.
    let far = TestOutlet::default();
    assert_eq!(
        leaf.node.subscribe(far.clone(), Some(EventId(2)), 9),
        Err(SubscribeError::NotCovered)
    );
    let (replay, upstream) = root.replay(EventId(2), EventId(0), 9).unwrap();
    // The root publishes while the answer travels; the node has not relayed it yet.
    publish_n(&mut root, 10..=10);
    leaf.node
        .join_replayed(
            SeatKind::Listener(Everyone),
            far.clone(),
            &replay,
            upstream,
            EventId(0),
            10,
        )
        .unwrap();
    leaf.pump(10);
    assert_eq!(ids_of(&far), (3..=10).collect::<Vec<_>>());
    assert_eq!(ids_of(&near), [8, 9, 10]);
}

#[test]
fn a_listener_ahead_of_its_node_gets_each_later_event_once() {
    let mut root: Stream<_, _> = Stream::new(tree_settings(100), MemoryLog::default());
    let mut leaf = Below::join(&mut root, "sam", 100);
    publish_n(&mut root, 1..=4);
    leaf.pump(4);
    publish_n(&mut root, 5..=6);
    // It saw 6 on another node; this one has relayed only 4.
    let ahead = TestOutlet::default();
    assert_eq!(
        leaf.node.subscribe(ahead.clone(), Some(EventId(6)), 6),
        Err(SubscribeError::NotCovered)
    );
    let (replay, upstream) = root.replay(EventId(6), EventId(0), 6).unwrap();
    assert_eq!((replay.as_str(), upstream), ("", EventId(6)));
    leaf.node
        .join_replayed(
            SeatKind::Listener(Everyone),
            ahead.clone(),
            &replay,
            upstream,
            EventId(0),
            6,
        )
        .unwrap();
    publish_n(&mut root, 7..=7);
    leaf.pump(7);
    assert_eq!(ids_of(&ahead), [7]);
}

#[test]
fn a_node_whose_stream_from_its_parent_was_cut_loses_nothing_for_its_listeners() {
    let mut root: Stream<_, _> = Stream::new(tree_settings(100), MemoryLog::default());
    let mut leaf = Below::join(&mut root, "afr", 100);
    let listener = TestOutlet::default();
    leaf.node.subscribe(listener.clone(), None, 0).unwrap();
    publish_n(&mut root, 1..=2);
    leaf.pump(2);
    // The relay is cut (say, as slow); events go on meanwhile.
    leaf.relay.0.borrow_mut().gone = true;
    publish_n(&mut root, 3..=5);
    assert_eq!(root.relays(), 0);
    // It resumes as any listener does, from the last id it relayed.
    leaf.resume(&mut root, 5);
    publish_n(&mut root, 6..=6);
    leaf.pump(6);
    assert_eq!(ids_of(&listener), (1..=6).collect::<Vec<_>>());
    // The replayed part came with its publication times and is kept here too: a
    // resume into it is answered by the node.
    let resumed = TestOutlet::default();
    leaf.node
        .subscribe(resumed.clone(), Some(EventId(2)), 6)
        .unwrap();
    assert_eq!(ids_of(&resumed), [3, 4, 5, 6]);
}

#[test]
fn a_gap_upstream_reaches_the_listeners_below_and_resumes_there_say_gap_like_the_root() {
    let mut root: Stream<_, _> = Stream::new(tree_settings(3), MemoryLog::default());
    let mut leaf = Below::join(&mut root, "me", 3);
    let listener = TestOutlet::default();
    leaf.node.subscribe(listener.clone(), None, 0).unwrap();
    publish_n(&mut root, 1..=1);
    leaf.pump(1);
    // Cut while 2..=6 are published; the root keeps only the last three.
    leaf.relay.0.borrow_mut().gone = true;
    publish_n(&mut root, 2..=6);
    leaf.resume(&mut root, 6);
    leaf.pump(6);
    assert_eq!(ids_of(&listener), [1, 4, 5, 6]);
    assert_eq!(
        gap_of(&listener).as_deref(),
        Some(r#"{"firstAvailableId":"4","lastEventId":"1"}"#)
    );
    // Both answer a resume from 1 the same way.
    let at_root = listen(&mut root, Some(1));
    let (replay, upstream) = root.replay(EventId(1), EventId(0), 6).unwrap();
    let below = TestOutlet::default();
    leaf.node
        .join_replayed(
            SeatKind::Listener(Everyone),
            below.clone(),
            &replay,
            upstream,
            EventId(0),
            6,
        )
        .unwrap();
    assert_eq!(events(&below), events(&at_root));
}

#[test]
fn a_node_below_takes_no_one_before_its_stream_has_started() {
    let path = NodePath::parse("enam").unwrap();
    let mut node: Node = Stream::relayed(tree_settings(10), path, MemoryLog::default());
    assert!(!node.is_live());
    assert_eq!(
        node.subscribe(TestOutlet::default(), None, 0),
        Err(SubscribeError::NotCovered)
    );
    node.relay_started(EventId(41), None);
    assert_eq!(
        node.subscribe(TestOutlet::default(), None, 0),
        Ok(EventId(41))
    );
}

#[test]
fn tree_stats_add_up_over_the_objects() {
    let mut root: Stream<_, _> = Stream::new(tree_settings(10), MemoryLog::default());
    let a = listen(&mut root, None);
    let mut leaf = Below::join(&mut root, "weur", 10);
    let b = TestOutlet::default();
    leaf.node.subscribe(b.clone(), None, 0).unwrap();
    leaf.node.subscribe(TestOutlet::default(), None, 0).unwrap();
    publish_n(&mut root, 1..=2);
    leaf.pump(2);
    let mut total = root.stats(2);
    let below = StreamStats::from_json(&leaf.node.stats(2).to_json("x")).unwrap();
    total.absorb(&below);
    assert_eq!(total.listeners, 3);
    assert_eq!(total.counters.delivered, 6);
    assert_eq!(total.objects, 2);
    assert_eq!(total.last_id, EventId(2));
    assert_eq!(total.counters.published, 2);
    drop((a, b));
}

#[test]
fn a_node_started_for_a_resume_holds_what_its_returning_listeners_missed() {
    let mut root: Stream<_, _> = Stream::new(tree_settings(100), MemoryLog::default());
    publish_n(&mut root, 1..=20);
    // Everything restarted: a fresh node's first seat resumes after 18, so it takes its
    // stream from a little before (here 10), as the platform does.
    let seed = Some(EventId(10));
    let mut below = Below::start(&mut root, "weur", tree_settings(100), seed, 20);
    below.pump(20);
    // The listeners coming back are all answered here, each from its own id.
    for after in [18, 12, 10, 20] {
        let o = TestOutlet::default();
        below
            .node
            .subscribe(o.clone(), Some(EventId(after)), 20)
            .unwrap();
        assert_eq!(
            ids_of(&o),
            (after + 1..=20).collect::<Vec<_>>(),
            "after {after}"
        );
    }
    // Older than that is asked of the root, as before.
    assert_eq!(
        below
            .node
            .subscribe(TestOutlet::default(), Some(EventId(9)), 20),
        Err(SubscribeError::NotCovered)
    );
    // A listener that does not resume starts from where the parent was, not from the
    // replay before it.
    let fresh = TestOutlet::default();
    below.node.subscribe(fresh.clone(), None, 20).unwrap();
    publish_n(&mut root, 21..=21);
    below.pump(21);
    assert_eq!(ids_of(&fresh), [21]);
}

#[test]
fn events_replayed_to_a_node_keep_their_age_so_it_never_serves_an_expired_one() {
    let aging = StreamSettings {
        history: HistoryPolicy {
            max_events: 100,
            max_age_ms: 1000,
        },
        ..tree_settings(100)
    };
    let mut root: Stream<_, _> = Stream::new(aging, MemoryLog::default());
    root.publish(&msg("old"), 0).unwrap();
    root.publish(&msg("new"), 900).unwrap();
    root.flush();
    let mut below = Below::start(&mut root, "oc", aging, Some(EventId(0)), 950);
    // Arriving at 950, both are within the limit; at 1500 the first is older than it.
    below.pump(950);
    let o = TestOutlet::default();
    let answered = below.node.subscribe(o.clone(), Some(EventId(0)), 1500);
    match answered {
        // The node no longer holds 1: the root answers, with a gap, as it would.
        Err(SubscribeError::NotCovered) => {}
        Ok(_) => assert_eq!(ids_of(&o), [2], "an expired event was served"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_node_that_empties_hands_its_counts_up_so_the_stats_keep_them() {
    let mut root: Stream<_, _> = Stream::new(tree_settings(10), MemoryLog::default());
    let mut leaf = Below::join(&mut root, "oc", 10);
    let gone = TestOutlet::default();
    leaf.node.subscribe(gone.clone(), None, 0).unwrap();
    publish_n(&mut root, 1..=3);
    leaf.pump(3);
    gone.0.borrow_mut().gone = true;
    leaf.node.keep_alive(4);
    assert_eq!(leaf.node.listeners(), 0);
    // Empty now: its last report carries what it counted, and it counts from zero.
    let handed = leaf.node.hand_up();
    assert_eq!((handed.delivered, handed.dropped_gone), (3, 1));
    assert_eq!(leaf.node.hand_up(), Counters::default());
    root.report(leaf.node.path(), 0, Some(&handed));
    let s = root.stats(5);
    assert_eq!((s.counters.delivered, s.counters.dropped_gone), (3, 1));
    assert_eq!(s.counters.published, 3);
    // The root hands up nothing (it has no parent), but a node between does, with
    // what it was handed.
    let mut head = Below::join(&mut root, "weur", 10);
    head.node
        .report(&NodePath::parse("weur.0").unwrap(), 0, Some(&handed));
    assert_eq!(head.node.hand_up().delivered, 3);
}

/// The text a stream has carried so far.
#[test]
fn a_node_that_slept_goes_on_from_its_last_relayed_id_and_asks_up_for_older_resumes() {
    let mut root = Stream::new(tree_settings(100), MemoryLog::default());
    let mut below = Below::join(&mut root, "weur", 0);
    publish_n(&mut root, 1..=7);
    below.pump(8);
    assert_eq!(below.node.last_id(), EventId(7));

    // A fresh instance of the node: only its last relayed id survived, in its socket's note.
    let mut node: Node = Stream::relayed(
        tree_settings(100),
        NodePath::parse("weur").unwrap(),
        MemoryLog::default(),
    );
    node.relay_resumed(EventId(7));
    let asleep = TestOutlet::default();
    asleep.0.borrow_mut().sleeps = true;
    assert_eq!(node.restore(vec![(Everyone, asleep.clone())]), 1);
    assert!(node.is_live(), "it takes seats again");
    assert_eq!(node.resume_after(), Some(EventId(7)));
    assert!(
        !node.needs_keep_alive(),
        "seats that sleep: nothing to keep alive here"
    );

    // The parent goes on writing to the same socket: the node takes what comes next.
    below.node = node;
    publish_n(&mut root, 8..=9);
    below.pump(10);
    assert_eq!(ids_of(&asleep), vec![8, 9]);

    // What it relayed before the sleep is not held here: a resume from there asks up.
    let late = TestOutlet::default();
    assert_eq!(
        below
            .node
            .join(SeatKind::Listener(Everyone), late, Some(EventId(3)), 11),
        Err(SubscribeError::NotCovered)
    );
    let fresh = TestOutlet::default();
    below
        .node
        .join(SeatKind::Listener(Everyone), fresh, Some(EventId(9)), 11)
        .unwrap();
}

mod heads;
mod tree_properties;
