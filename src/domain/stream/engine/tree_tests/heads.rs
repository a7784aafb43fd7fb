//! A node and a parent whose head is not where the node thought: a resume from ahead of
//! the head, a parent that comes back lower, a root behind its node, a parent out of
//! reach. In every case the node answers as the root would, and never goes past what its
//! parent answered.

use super::*;

fn text_of(o: &TestOutlet) -> String {
    o.0.borrow_mut().read_all();
    o.0.borrow().text()
}

/// A listener on `node` resuming after `after`, with its replay asked of `root` when
/// the node does not hold it, as the platform asks up.
fn resume_below(node: &mut Node, root: &mut Node, after: u64, now_ms: u64) -> TestOutlet {
    let o = TestOutlet::default();
    let after = EventId(after);
    match node.subscribe(o.clone(), Some(after), now_ms) {
        Err(SubscribeError::NotCovered) => {
            let through = node.holds_through();
            let (replay, upstream) = root.replay(after, through, now_ms).unwrap();
            node.join_replayed(
                SeatKind::Listener(Everyone),
                o.clone(),
                &replay,
                upstream,
                through,
                now_ms,
            )
            .unwrap();
        }
        joined => {
            joined.unwrap();
        }
    }
    o
}

#[test]
fn a_nodes_last_id_never_exceeds_what_its_parent_answered() {
    let mut root: Stream<_, _> = Stream::new(tree_settings(100), MemoryLog::default());
    publish_n(&mut root, 1..=3);
    // Started for a resume (seeded before it), from now, and for a resume far ahead of
    // the root (seeded beyond its head): the root answers each with its head, 3.
    for seed in [Some(1), None, Some(900)] {
        let seed = seed.map(EventId);
        let mut below = Below::start(&mut root, "weur", tree_settings(100), seed, 3);
        let last = below.node.last_id();
        assert!(last <= EventId(3), "seeded {seed:?}: at {last}");
        below.pump(3);
        assert_eq!(below.node.last_id(), EventId(3), "seeded {seed:?}");
    }
}

#[test]
fn a_resume_far_ahead_of_the_head_is_answered_below_the_root_exactly_as_on_it() {
    let mut root: Stream<_, _> = Stream::new(tree_settings(100), MemoryLog::default());
    publish_n(&mut root, 1..=3);
    let at_root = listen(&mut root, Some(1000));
    // The resume from 1000 starts a fresh node, which asks its parent from 900: the
    // root is at 3. The node starts at the root's ids, and seats no one before it has
    // read the root's gap (which is for no one: it had no seats).
    let seed = Some(EventId(900));
    let mut head = Below::start(&mut root, "weur", tree_settings(100), seed, 3);
    assert!(!head.node.is_live());
    head.pump(3);
    assert!(head.node.is_live());
    let below = resume_below(&mut head.node, &mut root, 1000, 3);
    assert_eq!(text_of(&below), text_of(&at_root));
    assert_eq!(
        gap_of(&below).as_deref(),
        Some(r#"{"firstAvailableId":"1","lastEventId":"1000"}"#)
    );
    assert_eq!(ids_of(&below), [1, 2, 3]);
    // Later listeners there: the same resume again, one from now, one on a node below.
    let again = resume_below(&mut head.node, &mut root, 1000, 3);
    let from_now = TestOutlet::default();
    head.node.subscribe(from_now.clone(), None, 3).unwrap();
    let mut leaf = Below::join(&mut head.node, "weur.0", 100);
    let on_leaf = TestOutlet::default();
    leaf.node.subscribe(on_leaf.clone(), None, 3).unwrap();
    publish_n(&mut root, 4..=5);
    head.pump(5);
    leaf.pump(5);
    assert_eq!(ids_of(&below), [1, 2, 3, 4, 5]);
    assert_eq!(events(&below), events(&at_root));
    assert_eq!(events(&again), events(&at_root));
    assert_eq!(ids_of(&from_now), [4, 5]);
    assert_eq!(ids_of(&on_leaf), [4, 5]);
}

#[test]
fn a_node_whose_parent_comes_back_with_a_lower_head_takes_its_position_and_its_gap() {
    let mut root: Stream<_, _> = Stream::new(tree_settings(100), MemoryLog::default());
    let mut head = Below::join(&mut root, "weur", 100);
    let mut leaf = Below::join(&mut head.node, "weur.0", 100);
    let on_head = TestOutlet::default();
    head.node.subscribe(on_head.clone(), None, 0).unwrap();
    let on_leaf = TestOutlet::default();
    leaf.node.subscribe(on_leaf.clone(), None, 0).unwrap();
    publish_n(&mut root, 1..=5);
    head.pump(5);
    leaf.pump(5);
    // The root lost its storage: it starts again over an empty log and gives 1 and 2
    // to other events. The head's stream ended with the old root; it resumes after 5.
    let mut root: Stream<_, _> = Stream::new(tree_settings(100), MemoryLog::default());
    root.publish_batch(&[msg("new1"), msg("new2")], 6).unwrap();
    root.flush();
    head.resume(&mut root, 6);
    let last = head.node.last_id();
    assert!(last <= EventId(2), "the head is at {last}, the root at 2");
    head.pump(6);
    // Its listener gets what a listener resuming after 5 on the root gets: the root's
    // gap and the events it keeps.
    let on_root = text_of(&listen(&mut root, Some(5)));
    let replayed = on_root.strip_prefix(&protocol::retry(1000)).unwrap();
    assert!(replayed.starts_with("event: gap\n"), "{replayed}");
    assert!(
        text_of(&on_head).ends_with(replayed),
        "{}",
        text_of(&on_head)
    );
    // Its history of the old ids is gone: a resume after 1 gets the new 2.
    let after_one = resume_below(&mut head.node, &mut root, 1, 6);
    assert_eq!(
        events(&after_one),
        [("2".into(), "message".into(), "new2".into())]
    );
    // Its child's stream was ended: the child resumes after 5 too, and takes the same
    // position and gap.
    assert!(leaf.relay.0.borrow().closed);
    leaf.pump(6);
    leaf.resume_asking(&mut head.node, &mut root, 6);
    let last = leaf.node.last_id();
    assert!(last <= EventId(2), "the leaf is at {last}, its parent at 2");
    leaf.pump(6);
    root.publish(&msg("new3"), 7).unwrap();
    root.flush();
    head.pump(7);
    leaf.pump(7);
    assert_eq!(ids_of(&on_head), [1, 2, 3, 4, 5, 1, 2, 3]);
    assert_eq!(events(&on_leaf), events(&on_head));
    assert_eq!(ids_of(&after_one), [2, 3]);
}

#[test]
fn a_node_seats_no_one_on_a_replay_from_a_root_that_is_behind_it() {
    let mut root: Stream<_, _> = Stream::new(tree_settings(100), MemoryLog::default());
    let mut head = Below::join(&mut root, "weur", 100);
    publish_n(&mut root, 1..=5);
    head.pump(5);
    // The root starts again over an empty log before the head's stream from it
    // resumes; a resume the head asks up for comes back behind what it holds.
    let mut root: Stream<_, _> = Stream::new(tree_settings(100), MemoryLog::default());
    publish_n(&mut root, 1..=2);
    let o = TestOutlet::default();
    let after = EventId(7);
    let joined = head.node.subscribe(o.clone(), Some(after), 6);
    assert_eq!(joined, Err(SubscribeError::NotCovered));
    let through = head.node.holds_through();
    let (replay, upstream) = root.replay(after, through, 6).unwrap();
    assert_eq!(upstream, EventId(2), "the root answers with its own head");
    let joined = head.node.join_replayed(
        SeatKind::Listener(Everyone),
        o.clone(),
        &replay,
        upstream,
        through,
        6,
    );
    assert_eq!(joined, Err(SubscribeError::NotCovered));
    assert_eq!(head.node.listeners(), 0);
}

#[test]
fn a_node_cut_off_from_its_parent_ends_its_streams_and_seats_again_once_it_is_back() {
    let mut root: Stream<_, _> = Stream::new(tree_settings(100), MemoryLog::default());
    let mut head = Below::join(&mut root, "weur", 100);
    let leaf = Below::join(&mut head.node, "weur.0", 100);
    let on_head = TestOutlet::default();
    head.node.subscribe(on_head.clone(), None, 0).unwrap();
    publish_n(&mut root, 1..=2);
    head.pump(2);
    // Its parent has been out of reach too long: it ends every stream it feeds, after
    // what they were sent.
    head.node.end_streams();
    assert!(on_head.0.borrow().closed);
    assert!(leaf.relay.0.borrow().closed);
    assert_eq!((head.node.listeners(), head.node.relays()), (0, 0));
    assert_eq!(ids_of(&on_head), [1, 2]);
    // Once its stream is back, the listener that left resumes here, missing nothing.
    publish_n(&mut root, 3..=4);
    head.relay.0.borrow_mut().gone = true;
    head.resume(&mut root, 4);
    let back = TestOutlet::default();
    head.node
        .subscribe(back.clone(), Some(EventId(2)), 4)
        .unwrap();
    head.pump(4);
    assert_eq!(ids_of(&back), [3, 4]);
}
