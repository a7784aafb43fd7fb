//! Seats whose far end someone else holds (the entry Worker, over a socket the object may
//! sleep beside, [`Outlet::sleeps`]): they outlive the object's instance. A fresh instance
//! seats them again as they were; when one of them is cut at its far end (slow, gone), the
//! object is told and lets it go.

use super::*;
use crate::domain::announcer::Departure;

impl<O: Outlet, L: EventLog, F: Filter> Stream<O, L, F> {
    /// Seats again, in a fresh instance of this object, listeners whose streams went on
    /// without it: each had everything through this object's last id (an object sleeps
    /// only once it has written everything it published; one whose instance failed does
    /// not restore its seats, it has them attach again). Returns how many were seated.
    pub fn restore(&mut self, listeners: Vec<(F, O)>) -> usize {
        let count = listeners.len();
        for (filter, outlet) in listeners {
            let after = self.last_id;
            self.announcer.add(outlet, Seat { after, filter }, 0);
        }
        count
    }

    /// Lets go the listeners whose outlet `is` picks: their far end cut them, for `why`,
    /// without passing on `undelivered` events this object had written to them (they
    /// count as delivered no more). Returns how many.
    pub fn leave(&mut self, is: impl FnMut(&O) -> bool, why: Departure, undelivered: u64) -> usize {
        let fanout = self.announcer.remove_where(is, why);
        self.counters.record(fanout);
        let left = fanout.slow + fanout.gone;
        if left > 0 {
            self.counters.delivered = self.counters.delivered.saturating_sub(undelivered);
        }
        left
    }

    /// Lets go the children whose outlet `is` picks (their socket closed); returns how
    /// many.
    pub fn let_relays_go(&mut self, is: impl FnMut(&O) -> bool) -> usize {
        let fanout = self.relays.remove_where(is, Departure::Gone);
        fanout.gone
    }

    /// Ends the streams of `child` (it asked for a new one); returns how many.
    pub fn close_relays_of(&mut self, child: &NodePath) -> usize {
        self.relays.close_where(|relay| relay.child == *child)
    }

    /// Listeners whose seat sleeps with the object ([`Outlet::sleeps`]).
    pub fn sleeping(&self) -> usize {
        self.announcer.sleeping()
    }

    /// What this object has counted (its own and what emptied children handed it), for a
    /// later instance to go on from ([`Stream::go_on_counting`]) when this one may sleep.
    pub fn counted(&self) -> Counters {
        let mut counted = self.counters;
        counted.add_deliveries(&self.handed_up);
        counted
    }

    /// A fresh instance goes on from what an earlier one [`Stream::counted`], so that the
    /// stats of an object that slept are what they would have been had it not.
    pub fn go_on_counting(&mut self, counted: Counters) {
        self.counters = counted;
        self.handed_up = Counters::default();
    }

    /// Whether the keep-alive has work here: streams this object holds itself (listeners
    /// and children not on sockets), or an id reservation to give back once idle. An
    /// object whose seats all sleep has none: the Worker keeps their streams alive, a
    /// child on a socket is told when it must be, and the object may sleep (a node's
    /// reports to its parent are the platform's to time).
    pub fn needs_keep_alive(&self) -> bool {
        let held_here = self.listeners() - self.sleeping() + self.relays() - self.relays.sleeping();
        let reserved = self.origin == Origin::Root && self.log.high_water() > self.last_id;
        held_here > 0 || reserved
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{events, msg, settings};
    use super::*;
    use crate::domain::announcer::tests::TestOutlet;
    use crate::domain::history::MemoryLog;

    fn held() -> TestOutlet {
        let o = TestOutlet::default();
        o.0.borrow_mut().sleeps = true;
        o
    }

    fn ids(o: &TestOutlet) -> Vec<String> {
        events(o).into_iter().map(|e| e.0).collect()
    }

    /// A root with five events published and written, as an instance leaves it.
    fn root_with_five() -> Stream<TestOutlet, MemoryLog> {
        let mut ch = Stream::new(settings(5, 100), MemoryLog::default());
        for i in 1..=5 {
            ch.publish(&msg(&i.to_string()), i).unwrap();
        }
        ch.flush();
        ch
    }

    #[test]
    fn restored_seats_get_what_comes_next_once_and_nothing_twice() {
        // A fresh instance over the same log: the listeners had everything (it slept).
        let log = root_with_five().log().clone();
        let mut ch: Stream<TestOutlet, _> = Stream::new(settings(5, 100), log);
        let (a, b) = (held(), held());
        assert_eq!(
            ch.restore(vec![(Everyone, a.clone()), (Everyone, b.clone())]),
            2
        );
        assert!(a.0.borrow().queue.is_empty(), "nothing written on restore");
        ch.publish(&msg("6"), 10).unwrap();
        ch.flush();
        assert_eq!(ids(&a), ["6"]);
        assert_eq!(ids(&b), ["6"]);
        let stats = ch.stats(11);
        assert_eq!((stats.listeners, stats.sleeping), (2, 2));
    }

    #[test]
    fn a_root_whose_seats_all_sleep_needs_no_keep_alive_once_its_reservation_is_back() {
        let mut ch = root_with_five();
        ch.restore(vec![(Everyone, held())]);
        assert!(
            !ch.needs_keep_alive(),
            "seats on sockets alone: nothing to keep alive"
        );
        let streamed = TestOutlet::default();
        ch.subscribe(streamed.clone(), None, 6).unwrap();
        assert!(
            ch.needs_keep_alive(),
            "a stream held here needs its keep-alives"
        );

        let mut accepted = settings(5, 100);
        accepted.publish_ack = crate::domain::config::PublishAck::Accepted;
        let mut ch: Stream<TestOutlet, _> = Stream::new(accepted, MemoryLog::default());
        ch.restore(vec![(Everyone, held())]);
        ch.publish(&msg("1"), 1).unwrap();
        ch.flush();
        assert!(
            ch.needs_keep_alive(),
            "ids reserved ahead are given back at an idle keep-alive"
        );
        ch.keep_alive(2);
        assert!(
            ch.needs_keep_alive(),
            "published since the last keep-alive: not idle yet"
        );
        ch.keep_alive(3);
        assert!(
            !ch.needs_keep_alive(),
            "the reservation is back: the object may sleep"
        );
    }

    #[test]
    fn a_child_fed_over_a_stream_needs_keep_alives_and_one_on_a_socket_does_not() {
        let child = || SeatKind::Relay(crate::domain::NodePath::parse("weur").unwrap());
        let mut ch = root_with_five();
        let streamed = TestOutlet::default();
        ch.join(child(), streamed, None, 6).unwrap();
        assert!(ch.needs_keep_alive(), "a child's stream held here");

        let mut ch = root_with_five();
        let socket = held();
        ch.join(child(), socket.clone(), None, 6).unwrap();
        assert!(
            !ch.needs_keep_alive(),
            "a child on a socket is told when it must be"
        );
        assert_eq!(ch.relays(), 1);
        assert_eq!(
            ch.close_relays_of(&crate::domain::NodePath::parse("weur").unwrap()),
            1
        );
        assert!(
            socket.0.borrow().closed,
            "its stream is ended when it asks anew"
        );
        assert_eq!(ch.relays(), 0);
    }

    #[test]
    fn a_fresh_instance_goes_on_counting_from_what_the_one_before_counted() {
        let mut ch = root_with_five();
        ch.restore(vec![(Everyone, held())]);
        ch.publish(&msg("6"), 6).unwrap();
        ch.flush();
        let counted = ch.counted();
        assert_eq!((counted.published, counted.delivered), (6, 1));
        let mut fresh: Stream<TestOutlet, _> = Stream::new(settings(5, 100), ch.log().clone());
        fresh.go_on_counting(counted);
        fresh.restore(vec![(Everyone, held())]);
        fresh.publish(&msg("7"), 7).unwrap();
        fresh.flush();
        let stats = fresh.stats(8).counters;
        assert_eq!((stats.published, stats.delivered), (7, 2));
    }

    #[test]
    fn a_seat_cut_at_its_far_end_leaves_counted_as_what_cut_it() {
        let mut ch = root_with_five();
        let (a, b, c) = (held(), held(), TestOutlet::default());
        ch.restore(vec![(Everyone, a.clone()), (Everyone, b.clone())]);
        ch.subscribe(c.clone(), None, 6).unwrap();
        assert_eq!(ch.stats(6).sleeping, 2);
        ch.publish(&msg("6"), 7).unwrap();
        ch.flush();
        let delivered = ch.stats(7).counters.delivered;
        // The far end of `a` could not take "6": it is cut as slow, and "6" counts as
        // delivered to it no more.
        let a_end = std::rc::Rc::clone(&a.0);
        let left = ch.leave(|o| std::rc::Rc::ptr_eq(&o.0, &a_end), Departure::Slow, 1);
        assert_eq!(left, 1);
        let b_end = std::rc::Rc::clone(&b.0);
        ch.leave(|o| std::rc::Rc::ptr_eq(&o.0, &b_end), Departure::Gone, 0);
        assert_eq!(
            ch.leave(|o| std::rc::Rc::ptr_eq(&o.0, &b_end), Departure::Gone, 5),
            0,
            "a seat already gone is not let go twice, nor its count changed"
        );
        let stats = ch.stats(8);
        assert_eq!((stats.listeners, stats.sleeping), (1, 0));
        assert_eq!(
            (stats.counters.dropped_slow, stats.counters.dropped_gone),
            (1, 1)
        );
        assert_eq!(stats.counters.delivered, delivered - 1);
        a.0.borrow_mut().queue.clear();
        b.0.borrow_mut().queue.clear();
        ch.publish(&msg("7"), 9).unwrap();
        ch.flush();
        assert!(a.0.borrow().queue.is_empty() && b.0.borrow().queue.is_empty());
        assert_eq!(ids(&c), ["6", "7"]);
    }
}
