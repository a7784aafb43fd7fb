//! Streams that end: the root's ending, what listeners get then and after, and the end
//! crossing a tree.

use super::tests::{events, listen, msg, settings};
use super::tree_tests::{tree_settings, Below, Node};
use super::*;
use crate::domain::announcer::tests::TestOutlet;
use crate::domain::history::MemoryLog;
use crate::domain::message::END_EVENT_TYPE;

fn root() -> Node {
    Stream::new(tree_settings(100), MemoryLog::default())
}

/// The (id, type, data) of what `o` received, and whether its stream was closed.
fn received(o: &TestOutlet) -> (Vec<(String, String, String)>, bool) {
    (events(o), o.0.borrow().closed)
}

fn end_event(last: u64) -> (String, String, String) {
    (
        last.to_string(),
        END_EVENT_TYPE.to_string(),
        format!("{{\"lastEventId\":\"{last}\"}}"),
    )
}

fn event(id: u64, data: &str) -> (String, String, String) {
    (id.to_string(), "message".to_string(), data.to_string())
}

#[test]
fn ending_sends_the_last_events_then_end_and_closes_every_stream() {
    let mut ch = root();
    let o = listen(&mut ch, None);
    ch.publish(&msg("a"), 1).unwrap();
    let ended = ch.end(&[msg("b"), msg("c")], 2).unwrap();
    assert_eq!((ended.first, ended.last), (EventId(2), EventId(3)));
    assert_eq!(
        received(&o),
        (
            vec![event(1, "a"), event(2, "b"), event(3, "c"), end_event(3)],
            true
        )
    );
    assert_eq!(ch.listeners(), 0);
    assert_eq!(
        ch.log().ending().map(|e| (e.last_id, e.at_ms)),
        Some((EventId(3), 2)),
        "kept in the log, after the last events"
    );
    assert_eq!(ch.log().after(EventId(0)).unwrap().len(), 3);
}

#[test]
fn an_ending_is_kept_and_refuses_publishes_and_a_second_ending() {
    let mut ch = root();
    ch.publish(&msg("a"), 1).unwrap();
    ch.end(&[], 2).unwrap();
    assert_eq!(ch.check_publishable(), Err(StreamEnded));
    assert_eq!(ch.end(&[msg("x")], 3), Err(EndError::Ended(StreamEnded)));
    // A restart reads it back.
    let again: Node = Stream::new(tree_settings(100), ch.log().clone());
    assert_eq!(again.check_publishable(), Err(StreamEnded));
    assert_eq!(again.ending().map(|e| e.last_id), Some(EventId(1)));
}

#[test]
fn after_the_end_a_listener_gets_what_it_missed_and_end_or_nothing() {
    let mut ch = root();
    for (i, d) in ["a", "b", "c"].iter().enumerate() {
        ch.publish(&msg(d), i as u64).unwrap();
    }
    ch.end(&[], 5).unwrap();
    let finale = |ch: &mut Node, last: Option<u64>| match ch.subscribe(
        TestOutlet::default(),
        last.map(EventId),
        6,
    ) {
        Err(SubscribeError::Finished(finale)) => finale.body,
        other => panic!("not a finale: {other:?}"),
    };
    let parse = |body: String| -> Vec<(String, String, String)> {
        protocol::Parser::parse_all(body.as_bytes())
            .into_iter()
            .map(|e| (e.last_event_id, e.event_type, e.data))
            .collect()
    };
    // Joining after the end: the whole answer, then end.
    let whole = finale(&mut ch, None).unwrap();
    assert!(whole.starts_with("retry: 1000\n"), "{whole}");
    assert_eq!(
        parse(whole),
        [event(1, "a"), event(2, "b"), event(3, "c"), end_event(3)]
    );
    // A reload in the middle: the rest, then end.
    assert_eq!(
        parse(finale(&mut ch, Some(2)).unwrap()),
        [event(3, "c"), end_event(3)]
    );
    // Everything seen: nothing (the platform answers 204).
    assert_eq!(finale(&mut ch, Some(3)), None);
    assert_eq!(ch.listeners(), 0, "no seat is made");
}

#[test]
fn an_empty_stream_that_ended_says_so_with_its_last_id_zero() {
    let mut ch = root();
    ch.end(&[], 1).unwrap();
    let Err(SubscribeError::Finished(finale)) = ch.subscribe(TestOutlet::default(), None, 2) else {
        panic!("not a finale");
    };
    let body = finale.body.unwrap();
    let parsed = protocol::Parser::parse_all(body.as_bytes());
    assert_eq!(parsed.len(), 1);
    assert_eq!(
        (
            parsed[0].last_event_id.as_str(),
            parsed[0].event_type.as_str()
        ),
        ("0", END_EVENT_TYPE),
        "an EventSource that reconnects sends 0, and gets 204"
    );
    assert!(matches!(
        ch.subscribe(TestOutlet::default(), Some(EventId(0)), 2),
        Err(SubscribeError::Finished(Finale { body: None }))
    ));
}

#[test]
fn accepted_events_are_stored_before_the_ending() {
    let mut s = settings(5, 10);
    s.publish_ack = PublishAck::Accepted;
    let mut ch: Stream<TestOutlet, MemoryLog> = Stream::new(s, MemoryLog::default());
    let o = listen(&mut ch, None);
    ch.publish(&msg("a"), 1).unwrap();
    ch.end(&[msg("b")], 2).unwrap();
    let kept: Vec<_> = ch.log().after(EventId(0)).unwrap();
    assert_eq!(kept.iter().map(|e| e.id.0).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(received(&o).0, [event(1, "a"), event(2, "b"), end_event(2)]);
}

#[test]
fn the_end_crosses_the_tree_and_each_node_ends_its_seats_then_sends_them_to_the_root() {
    let mut ch = root();
    let mut head = Below::join(&mut ch, "weur", 100);
    let mut leaf = Below::join(&mut head.node, "weur.0", 100);
    let on_head = TestOutlet::default();
    head.node.subscribe(on_head.clone(), None, 0).unwrap();
    let on_leaf = TestOutlet::default();
    leaf.node.subscribe(on_leaf.clone(), None, 0).unwrap();
    ch.publish(&msg("a"), 1).unwrap();
    ch.end(&[msg("z")], 2).unwrap();
    assert_eq!(
        ch.relays(),
        0,
        "the children's streams are closed after the end"
    );
    head.pump(2);
    leaf.pump(2);
    for o in [&on_head, &on_leaf] {
        assert_eq!(
            received(o),
            (vec![event(1, "a"), event(2, "z"), end_event(2)], true)
        );
    }
    assert_eq!(head.node.relays(), 0);
    assert!(leaf.node.has_ended() && head.node.has_ended());
    // Later listeners of a node are sent to the root, which answers them.
    assert_eq!(
        leaf.node
            .subscribe(TestOutlet::default(), Some(EventId(1)), 3),
        Err(SubscribeError::Ended)
    );
    assert_eq!(leaf.node.place(Region::Any, 0), Place::Here);
    // A child asking the root for its stream after the end is refused.
    assert_eq!(
        ch.join(
            SeatKind::Relay(NodePath::parse("oc").unwrap()),
            TestOutlet::default(),
            None,
            3
        ),
        Err(SubscribeError::Ended)
    );
}

#[test]
fn a_node_told_of_the_end_without_the_notice_closes_its_seats_for_them_to_ask_the_root() {
    let mut ch = root();
    let mut leaf = Below::join(&mut ch, "oc", 100);
    let on_leaf = TestOutlet::default();
    leaf.node.subscribe(on_leaf.clone(), None, 0).unwrap();
    ch.publish(&msg("a"), 1).unwrap();
    ch.flush();
    leaf.pump(1);
    leaf.node.ended_elsewhere();
    let (got, closed) = received(&on_leaf);
    assert_eq!((got, closed), (vec![event(1, "a")], true), "no end notice");
    assert_eq!(leaf.node.check_publishable(), Err(StreamEnded));
}
