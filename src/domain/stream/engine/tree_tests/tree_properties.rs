//! Random publishes, pumps, relay cuts and listeners moving over a three-level tree.

use super::*;
use crate::domain::stream::route::tests::Topics;
use proptest::prelude::*;

/// What happens to a three-level tree (root, a region head, a leaf below it).
#[derive(Debug, Clone)]
enum Step {
    /// The root publishes a batch of this many events.
    Publish(usize),
    /// The head (false) or the leaf (true) reads what its parent wrote.
    Pump(bool),
    /// The head's or the leaf's stream from its parent is cut; it resumes.
    Cut(bool),
    /// A listener leaves and comes back with its last id, on this node (0..3).
    Move(usize, usize),
    /// A listener comes back, on this node, with an id this far ahead of the
    /// root's head (one it never gave: a client that made it up, or storage reset).
    Jump(usize, usize, u64),
    /// The leaf restarts: a fresh one takes its stream from this far from the
    /// root's head (ahead of it, for a resume from the future; none: from now),
    /// and the leaf's listeners come back to it with their last ids.
    Renew(Option<i64>),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1usize..4).prop_map(Step::Publish),
        any::<bool>().prop_map(Step::Pump),
        any::<bool>().prop_map(Step::Pump),
        any::<bool>().prop_map(Step::Cut),
        (0usize..6, 0usize..3).prop_map(|(l, n)| Step::Move(l, n)),
        (0usize..6, 0usize..3, 1u64..2000).prop_map(|(l, n, a)| Step::Jump(l, n, a)),
        proptest::option::of(-8i64..1000).prop_map(Step::Renew),
    ]
}

struct Listener {
    outlet: TestOutlet,
    /// The node it is on (0 root, 1 head, 2 leaf).
    at: usize,
    /// Ids seen on earlier connections, in order.
    seen: Vec<u64>,
    /// `gap` notices seen on earlier connections.
    gaps: Vec<String>,
}

impl Listener {
    fn all(&self) -> Vec<u64> {
        let mut all = self.seen.clone();
        all.extend(ids_of(&self.outlet));
        all
    }

    fn all_gaps(&self) -> Vec<String> {
        let mut gaps = self.gaps.clone();
        gaps.extend(gaps_of(&self.outlet));
        gaps
    }

    /// Leaves its stream, keeping what it saw; returns its last id.
    fn leave(&mut self) -> EventId {
        self.seen = self.all();
        self.gaps = self.all_gaps();
        self.outlet.0.borrow_mut().gone = true;
        self.outlet = TestOutlet::default();
        EventId(self.seen.last().copied().unwrap_or(0))
    }
}

fn gaps_of(o: &TestOutlet) -> Vec<String> {
    events(o)
        .into_iter()
        .filter(|e| e.1 == GAP_EVENT_TYPE)
        .map(|e| e.2)
        .collect()
}

/// A three-level tree (root, a region head, a leaf below it) of either face: `F` is its
/// listeners' filter.
struct Tree<F: Filter + Clone = Everyone> {
    root: Node<F>,
    below: Vec<Below<F>>,
    now: u64,
}

impl<F: Filter + Clone> Tree<F> {
    fn new() -> Tree<F> {
        let mut root = Stream::new(tree_settings(10_000), MemoryLog::default());
        let head = Below::join(&mut root, "weur", 10_000);
        let mut tree = Tree {
            root,
            below: vec![head],
            now: 0,
        };
        let leaf = Below::join(&mut tree.below[0].node, "weur.0", 10_000);
        tree.below.push(leaf);
        tree
    }

    fn pump(&mut self, i: usize) {
        self.below[i].pump(self.now);
    }

    /// Seats a listener on node `at` (0 root, 1 head, 2 leaf), resuming after
    /// `after`, asking up the tree as the platform does.
    fn seat(&mut self, at: usize, outlet: TestOutlet, after: EventId)
    where
        F: Default,
    {
        self.seat_filtered(at, F::default(), outlet, after);
    }

    /// As [`Tree::seat`], for a listener with `filter`.
    fn seat_filtered(&mut self, at: usize, filter: F, outlet: TestOutlet, after: EventId) {
        let now = self.now;
        let seat = SeatKind::Listener(filter);
        if at == 0 {
            self.root.join(seat, outlet, Some(after), now).unwrap();
            return;
        }
        if !self.below[at - 1].node.is_live() {
            // The platform seats no one before the node's stream has begun.
            self.pump(at - 1);
        }
        let node = &mut self.below[at - 1].node;
        match node.join(seat.clone(), outlet.clone(), Some(after), now) {
            Err(SubscribeError::NotCovered) => {
                let through = self.below[at - 1].node.holds_through();
                let (replay, upstream) = self.replay(at - 1, after, through);
                self.below[at - 1]
                    .node
                    .join_replayed(seat, outlet, &replay, upstream, through, now)
                    .unwrap();
            }
            joined => {
                joined.unwrap();
            }
        }
    }

    /// The replay node `at`'s parent answers (asking its own parent when needed).
    fn replay(&mut self, at: usize, after: EventId, through: EventId) -> (String, EventId) {
        let now = self.now;
        if at == 0 {
            return self.root.replay(after, through, now).unwrap();
        }
        match self.below[at - 1].node.replay(after, through, now) {
            Err(SubscribeError::NotCovered) => self.replay(at - 1, after, through),
            answered => answered.unwrap(),
        }
    }

    fn parent(&mut self, i: usize) -> &mut Node<F> {
        match i {
            0 => &mut self.root,
            _ => &mut self.below[i - 1].node,
        }
    }

    /// Opens the relay of `below[i]` (`path`) on its parent, after `after` (from
    /// now when none), asking up the tree as the platform does; its position.
    fn open_relay(
        &mut self,
        i: usize,
        path: NodePath,
        relay: TestOutlet,
        after: Option<EventId>,
    ) -> EventId {
        let now = self.now;
        let parent = self.parent(i);
        parent.flush();
        match (
            parent.join(SeatKind::Relay(path.clone()), relay.clone(), after, now),
            after,
        ) {
            (Err(SubscribeError::NotCovered), Some(after)) => {
                let through = self.parent(i).holds_through();
                let (replay, upstream) = self.replay(i, after, through);
                self.parent(i)
                    .join_replayed(
                        SeatKind::Relay(path),
                        relay,
                        &replay,
                        upstream,
                        through,
                        now,
                    )
                    .unwrap()
            }
            (joined, _) => joined.unwrap(),
        }
    }

    fn cut(&mut self, i: usize) {
        self.below[i].relay.0.borrow_mut().gone = true;
        // The parent finds out at its next write; the child resumes at once.
        let fresh = TestOutlet::default();
        let path = self.below[i].node.path().clone();
        let last = self.below[i].node.last_id();
        let position = self.open_relay(i, path, fresh.clone(), Some(last));
        let below = &mut self.below[i];
        below.relay = fresh;
        below.reader.end_of_stream();
        below.node.relay_started(position, Some(last));
        let last = below.node.last_id();
        assert!(last <= position, "at {last}, answered {position}");
    }

    /// A fresh leaf in place of the old one, its stream starting after `seed`.
    fn renew(&mut self, seed: Option<EventId>) {
        self.below[1].relay.0.borrow_mut().gone = true;
        let path = self.below[1].node.path().clone();
        let relay = TestOutlet::default();
        let position = self.open_relay(1, path.clone(), relay.clone(), seed);
        let mut node = Stream::relayed(tree_settings(10_000), path, MemoryLog::default());
        node.relay_started(position, seed);
        let last = node.last_id();
        assert!(
            last <= position,
            "seeded {seed:?}: at {last}, answered {position}"
        );
        self.below[1] = Below {
            node,
            relay,
            reader: protocol::FrameReader::new(),
        };
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the order of publishes, relays, cuts, restarts and listeners moving
    /// between nodes, every listener ends up with every id once, in order; one that
    /// comes back from ahead of the head gets the root's `gap` and every event
    /// again, wherever it lands.
    #[test]
    fn every_listener_gets_every_event_once_in_order_wherever_it_moves(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        let mut tree: Tree = Tree::new();
        let mut listeners: Vec<Listener> = (0..6)
            .map(|i| {
                let outlet = TestOutlet::default();
                tree.seat(i % 3, outlet.clone(), EventId(0));
                Listener { outlet, at: i % 3, seen: Vec::new(), gaps: Vec::new() }
            })
            .collect();
        let mut gaps: Vec<Vec<String>> = vec![Vec::new(); listeners.len()];
        for step in steps {
            tree.now += 1;
            match step {
                Step::Publish(n) => {
                    let batch: Vec<Message> = (0..n).map(|i| msg(&format!("e{i}"))).collect();
                    tree.root.publish_batch(&batch, tree.now).unwrap();
                    tree.root.flush();
                }
                Step::Pump(leaf) => tree.pump(usize::from(leaf)),
                Step::Cut(leaf) => tree.cut(usize::from(leaf)),
                Step::Move(l, at) => {
                    let after = listeners[l].leave();
                    listeners[l].at = at;
                    tree.seat(at, listeners[l].outlet.clone(), after);
                }
                Step::Jump(l, at, ahead) => {
                    listeners[l].leave();
                    // It starts over: what the channel keeps is all new to it.
                    listeners[l].seen.clear();
                    let head = tree.root.last_id();
                    let after = EventId(head.0 + ahead);
                    let first = if head.0 > 0 { r#""1""# } else { "null" };
                    gaps[l].push(format!(r#"{{"firstAvailableId":{first},"lastEventId":"{after}"}}"#));
                    listeners[l].at = at;
                    tree.seat(at, listeners[l].outlet.clone(), after);
                }
                Step::Renew(offset) => {
                    let head = tree.root.last_id().0 as i64;
                    let seed = offset.map(|o| EventId((head + o).max(0) as u64));
                    tree.renew(seed);
                    for listener in listeners.iter_mut().filter(|l| l.at == 2) {
                        let after = listener.leave();
                        tree.seat(2, listener.outlet.clone(), after);
                    }
                }
            }
        }
        tree.pump(0);
        tree.pump(1);
        let last = tree.root.last_id().0;
        for (i, listener) in listeners.iter().enumerate() {
            prop_assert_eq!(listener.all(), (1..=last).collect::<Vec<_>>(), "listener {}", i);
            prop_assert_eq!(&listener.all_gaps(), &gaps[i], "listener {}", i);
        }
    }
}

const TOPICS: [&str; 3] = ["a", "b", "c"];

/// What happens to a tree of the Mercure face.
#[derive(Debug, Clone)]
enum RoutedStep {
    /// The root publishes an event on these topics (a bit per topic), private or not.
    Publish(u8, bool),
    Pump(bool),
    Cut(bool),
    /// A listener leaves and comes back on this node with the key of the last event it
    /// saw, its sequence number resolved at the root (as a node asks up for a key it
    /// does not hold).
    Move(usize, usize),
}

fn routed_step() -> impl Strategy<Value = RoutedStep> {
    prop_oneof![
        (1u8..8, any::<bool>()).prop_map(|(t, p)| RoutedStep::Publish(t, p)),
        any::<bool>().prop_map(RoutedStep::Pump),
        any::<bool>().prop_map(RoutedStep::Cut),
        (0usize..6, 0usize..3).prop_map(|(l, n)| RoutedStep::Move(l, n)),
    ]
}

/// The keys of the events in a listener's stream, in order; asserts that the stream
/// carries nothing meant only for other objects.
fn keys_of(o: &TestOutlet) -> Vec<String> {
    o.0.borrow_mut().read_all();
    let text = o.0.borrow().text();
    assert!(
        !text.contains(": route") && !text.contains(": seq"),
        "{text}"
    );
    crate::protocol::Parser::parse_all(text.as_bytes())
        .into_iter()
        .map(|e| e.last_event_id)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The Mercure face over the same tree: whatever the publishes, relays, cuts and
    /// moves, every listener ends up with exactly the events its filter admits, each once,
    /// in the root's order, with the root's keys; no listener's stream carries a route.
    #[test]
    fn every_listener_gets_exactly_what_its_filter_admits_once_in_order(
        steps in proptest::collection::vec(routed_step(), 1..60)
    ) {
        let mut tree: Tree<Topics> = Tree::new();
        let filters: Vec<Topics> = (0..6)
            .map(|i| Topics {
                topics: TOPICS.iter().enumerate().filter(|(t, _)| (i + t) % 3 != 0).map(|(_, t)| *t).collect(),
                private: i % 2 == 0,
                footprint: 0,
            })
            .collect();
        // Each listener: its outlet, its node, and the keys seen on earlier streams.
        let mut listeners: Vec<(TestOutlet, usize, Vec<String>)> = Vec::new();
        for (i, filter) in filters.iter().enumerate() {
            let outlet = TestOutlet::default();
            tree.seat_filtered(i % 3, filter.clone(), outlet.clone(), EventId(0));
            listeners.push((outlet, i % 3, Vec::new()));
        }
        let mut published: Vec<(String, Route)> = Vec::new();
        for step in steps {
            tree.now += 1;
            match step {
                RoutedStep::Publish(bits, private) => {
                    let key = format!("urn:k:{}", published.len() + 1);
                    let route = Route {
                        topics: TOPICS.iter().enumerate().filter(|(t, _)| bits & (1 << t) != 0).map(|(_, t)| t.to_string()).collect(),
                        private,
                    };
                    let frame = crate::protocol::Event::new(format!("d {key}")).with_id(key.clone()).unwrap().encode();
                    tree.root.publish_routed(frame, key.clone(), route.clone(), tree.now).unwrap();
                    tree.root.flush();
                    published.push((key, route));
                }
                RoutedStep::Pump(leaf) => tree.pump(usize::from(leaf)),
                RoutedStep::Cut(leaf) => tree.cut(usize::from(leaf)),
                RoutedStep::Move(l, at) => {
                    let (outlet, _, seen) = &mut listeners[l];
                    seen.extend(keys_of(outlet));
                    outlet.0.borrow_mut().gone = true;
                    let after = match seen.last() {
                        Some(key) => tree.root.find_key(key, tree.now).unwrap().unwrap(),
                        None => EventId(0),
                    };
                    let fresh = TestOutlet::default();
                    tree.seat_filtered(at, filters[l].clone(), fresh.clone(), after);
                    listeners[l] = (fresh, at, std::mem::take(&mut listeners[l].2));
                }
            }
        }
        tree.pump(0);
        tree.pump(1);
        for (i, (outlet, _, seen)) in listeners.iter().enumerate() {
            let mut all = seen.clone();
            all.extend(keys_of(outlet));
            let expected: Vec<String> = published
                .iter()
                .filter(|(_, route)| filters[i].admits(route))
                .map(|(key, _)| key.clone())
                .collect();
            prop_assert_eq!(all, expected, "listener {}", i);
        }
    }
}
