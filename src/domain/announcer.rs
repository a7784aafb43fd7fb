//! The announcer: one bounded queue per listener, fan-out without waiting.
//!
//! The seed design kept a `queue.Queue(maxsize=5)` per listener and dropped listeners
//! whose queue was full. Here the queue belongs to the runtime (an [`Outlet`] says how
//! many chunks are still waiting for its client) and the announcer enforces the bound:
//! - announcing writes one shared chunk to every listener and never waits;
//! - a listener whose queue is full is slow: its stream is closed after what is queued,
//!   so its client reconnects and catches up from history instead of silently missing
//!   events;
//! - a listener whose client is gone, or that has taken nothing since the previous
//!   keep-alive, is aborted: runtimes do not always report a vanished client, but a queue
//!   that stops draining gives it away.
//!
//! Two words for two ideas: a *keep-alive* is one comment written to every listener (and
//! the check that comes with it); the *heartbeat interval* is the time within which a
//! vanished client is removed, and holds several keep-alives (see
//! [`crate::domain::config::KEEP_ALIVES_PER_HEARTBEAT`]).

/// A listener's end of its stream, as the runtime provides it.
pub trait Outlet {
    /// What is written: an encoded frame in the runtime's own form, made once per event
    /// and shared by every listener.
    type Chunk;
    /// Makes a chunk from encoded text.
    fn chunk(text: &str) -> Self::Chunk;
    /// Chunks written but not yet taken by the client, or `None` when the client is gone.
    fn queued(&self) -> Option<usize>;
    fn write(&mut self, chunk: &Self::Chunk);
    /// Ends the stream after what is queued.
    fn close(&mut self);
    /// Ends the stream now, dropping what is queued.
    fn abort(&mut self);
    /// Whether the stream's far end is held by someone else (the entry Worker, over a
    /// socket the object may sleep beside), so that the seat costs its object nothing
    /// while no event comes. Such a far end keeps the bounded queue, the keep-alives and
    /// the vanished-client check itself, and says when it cut a listener.
    fn sleeps(&self) -> bool {
        false
    }
}

/// Why a listener whose far end cut it left ([`Announcer::remove_where`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// Its queue was full.
    Slow,
    /// Its client went away or stopped reading.
    Gone,
}

/// Counts of what one fan-out did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fanout {
    /// Listeners written to.
    pub delivered: usize,
    /// Events written, summed over those listeners (a chunk can hold several).
    pub events: u64,
    pub slow: usize,
    pub gone: usize,
}

struct Listener<O, I> {
    outlet: O,
    /// What the listener asked for and may see (nothing, on a channel: it gets everything).
    interest: I,
    /// Chunks written since the last keep-alive (see [`Announcer::keep_alive`]).
    written_since_keep_alive: usize,
}

/// The listeners of one object and their bounded queues. Each listener carries an
/// *interest* `I`: a channel's listeners carry none and all get the same chunk; a
/// filtering host (the Mercure hub, or a leaf of a fan-out tree) picks each listener's
/// chunk by its interest with [`Announcer::announce_by`].
pub struct Announcer<O: Outlet, I = ()> {
    capacity: usize,
    listeners: Vec<Listener<O, I>>,
    /// Interests of listeners removed since the last [`Announcer::take_departed`], when
    /// departures are reported at all ([`Announcer::reporting_departures`]).
    departed: Vec<I>,
    reports_departures: bool,
}

/// What happens to one listener on a write.
enum Verdict {
    Gone,
    Slow,
    Written,
    Skipped,
}

impl<O: Outlet, I> Announcer<O, I> {
    /// `capacity`: chunks a listener may have waiting before it counts as slow.
    pub fn new(capacity: usize) -> Self {
        Announcer {
            capacity: capacity.max(1),
            listeners: Vec::new(),
            departed: Vec::new(),
            reports_departures: false,
        }
    }

    /// Keeps the interests of the listeners removed, for [`Announcer::take_departed`]
    /// (the Mercure hub announces each subscription's end); without it, nothing is kept,
    /// so a host that never asks does not accumulate them.
    pub fn reporting_departures(mut self) -> Self {
        self.reports_departures = true;
        self
    }

    pub fn len(&self) -> usize {
        self.listeners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }

    /// Adds a listener whose outlet already holds `initial_chunks` (retry field, replay).
    pub fn add(&mut self, outlet: O, interest: I, initial_chunks: usize) {
        self.listeners.push(Listener {
            outlet,
            interest,
            written_since_keep_alive: initial_chunks,
        });
    }

    /// The interests of the listeners present.
    pub fn interests(&self) -> impl Iterator<Item = &I> {
        self.listeners.iter().map(|l| &l.interest)
    }

    /// Changes every listener's interest in place (a node of a fan-out tree that starts
    /// over at its parent's ids sets where each of its listeners is).
    pub fn update_interests(&mut self, mut change: impl FnMut(&mut I)) {
        for listener in &mut self.listeners {
            change(&mut listener.interest);
        }
    }

    /// The interests of listeners removed (slow, gone, stalled) since the last call.
    pub fn take_departed(&mut self) -> Vec<I> {
        std::mem::take(&mut self.departed)
    }

    /// Writes `chunk`, holding `events` events, to every listener that can take it;
    /// removes the others.
    pub fn announce(&mut self, chunk: &O::Chunk, events: u64) -> Fanout {
        self.announce_by(|_| Some((chunk, events)))
    }

    /// Writes to each listener the chunk `pick` chooses for its interest, with the number
    /// of events it holds (none: nothing is written to it, and it is not judged); removes
    /// those that cannot take theirs. `pick` is called once per listener, in the order of
    /// [`Announcer::interests`].
    pub fn announce_by<'c>(
        &mut self,
        mut pick: impl FnMut(&I) -> Option<(&'c O::Chunk, u64)>,
    ) -> Fanout
    where
        O::Chunk: 'c,
    {
        self.write_picked(|listener| pick(&listener.interest))
    }

    /// Writes to each listener what `pick` chooses for it (see [`Announcer::announce_by`]).
    fn write_picked<'c>(
        &mut self,
        mut pick: impl FnMut(&Listener<O, I>) -> Option<(&'c O::Chunk, u64)>,
    ) -> Fanout
    where
        O::Chunk: 'c,
    {
        let capacity = self.capacity;
        let mut fanout = Fanout::default();
        self.retain(|listener| {
            let Some((chunk, events)) = pick(listener) else {
                return Verdict::Skipped;
            };
            match listener.outlet.queued() {
                None => {
                    listener.outlet.abort();
                    fanout.gone += 1;
                    Verdict::Gone
                }
                Some(queued) if queued >= capacity => {
                    listener.outlet.close();
                    fanout.slow += 1;
                    Verdict::Slow
                }
                Some(_) => {
                    listener.outlet.write(chunk);
                    listener.written_since_keep_alive += 1;
                    fanout.delivered += 1;
                    fanout.events += events;
                    Verdict::Written
                }
            }
        });
        fanout
    }

    /// Writes `chunk` (a comment) to every listener whose stream this object holds, not
    /// to those whose far end keeps its own keep-alives ([`Outlet::sleeps`]); removes
    /// those that cannot take it.
    fn write_held(&mut self, chunk: &O::Chunk) -> Fanout {
        self.write_picked(|listener| (!listener.outlet.sleeps()).then_some((chunk, 0)))
    }

    /// Removes listeners whose client is known to be gone, without writing anything.
    pub fn sweep(&mut self) -> usize {
        let before = self.listeners.len();
        self.retain(|listener| match listener.outlet.queued() {
            Some(_) => Verdict::Skipped,
            None => {
                listener.outlet.abort();
                Verdict::Gone
            }
        });
        before - self.listeners.len()
    }

    /// Removes, without writing to them, the listeners whose outlet `is` picks: their far
    /// end cut them already, for `why`. Returns what that counts as.
    pub fn remove_where(&mut self, mut is: impl FnMut(&O) -> bool, why: Departure) -> Fanout {
        let mut fanout = Fanout::default();
        self.retain(|listener| {
            if !is(&listener.outlet) {
                return Verdict::Skipped;
            }
            match why {
                Departure::Slow => fanout.slow += 1,
                Departure::Gone => fanout.gone += 1,
            }
            Verdict::Gone
        });
        fanout
    }

    /// Listeners whose outlet [`Outlet::sleeps`].
    pub fn sleeping(&self) -> usize {
        self.listeners.iter().filter(|l| l.outlet.sleeps()).count()
    }

    /// Ends the streams of the listeners whose interest `ends` says is over (say, an
    /// expired token), after what is queued; returns how many.
    pub fn close_where(&mut self, mut ends: impl FnMut(&I) -> bool) -> usize {
        let before = self.listeners.len();
        self.retain(|listener| {
            if ends(&listener.interest) {
                listener.outlet.close();
                Verdict::Gone
            } else {
                Verdict::Skipped
            }
        });
        before - self.listeners.len()
    }

    /// Called at every keep-alive with a comment chunk. A listener that still has queued a
    /// chunk written before the previous keep-alive has taken nothing since then: it is
    /// aborted. The others get the comment (or are cut as slow); those whose far end keeps
    /// its own keep-alives get nothing.
    pub fn keep_alive(&mut self, chunk: &O::Chunk) -> Fanout {
        let mut stalled = 0;
        self.retain(|listener| {
            // Queues are FIFO: more queued than written since the last keep-alive means
            // that keep-alive (or something older) is still waiting.
            let stuck = listener
                .outlet
                .queued()
                .is_some_and(|q| q > listener.written_since_keep_alive);
            if stuck {
                listener.outlet.abort();
                stalled += 1;
                Verdict::Gone
            } else {
                Verdict::Skipped
            }
        });
        let mut fanout = self.write_held(chunk);
        for listener in &mut self.listeners {
            listener.written_since_keep_alive = 0;
        }
        fanout.gone += stalled;
        fanout
    }

    /// Keeps the listeners `judge` does not remove; the removed ones' interests depart.
    fn retain(&mut self, mut judge: impl FnMut(&mut Listener<O, I>) -> Verdict) {
        let removed = self.listeners.extract_if(.., |listener| {
            matches!(judge(listener), Verdict::Gone | Verdict::Slow)
        });
        let removed = removed.map(|listener| listener.interest);
        if self.reports_departures {
            self.departed.extend(removed);
        } else {
            removed.for_each(drop);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;

    /// What a test client sees of its stream.
    #[derive(Default, Debug)]
    pub struct Client {
        pub queue: VecDeque<Rc<str>>,
        pub received: Vec<Rc<str>>,
        pub gone: bool,
        /// The client went away unannounced: the runtime finds out at the next write.
        pub fails_on_write: bool,
        pub closed: bool,
        pub aborted: bool,
        /// Its far end is held elsewhere ([`Outlet::sleeps`]).
        pub sleeps: bool,
    }

    impl Client {
        /// Takes everything queued, as a fast client would.
        pub fn read_all(&mut self) {
            let drained: Vec<_> = self.queue.drain(..).collect();
            self.received.extend(drained);
        }
        pub fn text(&self) -> String {
            self.received.iter().map(|c| c.as_ref()).collect()
        }
    }

    #[derive(Clone, Default)]
    pub struct TestOutlet(pub Rc<RefCell<Client>>);

    impl Outlet for TestOutlet {
        type Chunk = Rc<str>;
        fn chunk(text: &str) -> Rc<str> {
            Rc::from(text)
        }
        fn queued(&self) -> Option<usize> {
            let c = self.0.borrow();
            (!c.gone && !c.closed && !c.aborted).then_some(c.queue.len())
        }
        fn write(&mut self, chunk: &Rc<str>) {
            let mut c = self.0.borrow_mut();
            c.queue.push_back(chunk.clone());
            c.gone |= c.fails_on_write;
        }
        fn close(&mut self) {
            self.0.borrow_mut().closed = true;
        }
        fn abort(&mut self) {
            let mut c = self.0.borrow_mut();
            c.aborted = true;
            c.queue.clear();
        }
        fn sleeps(&self) -> bool {
            self.0.borrow().sleeps
        }
    }

    fn announcer_with(n: usize, capacity: usize) -> (Announcer<TestOutlet>, Vec<TestOutlet>) {
        let mut a = Announcer::new(capacity);
        let outlets: Vec<TestOutlet> = (0..n).map(|_| TestOutlet::default()).collect();
        for o in &outlets {
            a.add(o.clone(), (), 0);
        }
        (a, outlets)
    }

    #[test]
    fn every_listener_gets_every_event_in_order() {
        let (mut a, outlets) = announcer_with(3, 5);
        for i in 0..20 {
            let f = a.announce(&TestOutlet::chunk(&format!("{i},")), 1);
            assert_eq!(
                f,
                Fanout {
                    delivered: 3,
                    events: 3,
                    slow: 0,
                    gone: 0
                }
            );
            for o in &outlets {
                o.0.borrow_mut().read_all();
            }
        }
        let expected: String = (0..20).map(|i| format!("{i},")).collect();
        for o in &outlets {
            assert_eq!(o.0.borrow().text(), expected);
        }
    }

    #[test]
    fn a_full_queue_closes_only_that_listener() {
        let (mut a, outlets) = announcer_with(2, 5);
        let (fast, slow) = (&outlets[0], &outlets[1]);
        for i in 0..5 {
            assert_eq!(
                a.announce(&TestOutlet::chunk(&i.to_string()), 1).delivered,
                2
            );
            fast.0.borrow_mut().read_all();
        }
        // The slow one holds 5: the sixth announce closes it, the fast one still gets it.
        let f = a.announce(&TestOutlet::chunk("5"), 1);
        assert_eq!(
            f,
            Fanout {
                delivered: 1,
                events: 1,
                slow: 1,
                gone: 0
            }
        );
        assert!(slow.0.borrow().closed);
        assert_eq!(
            slow.0.borrow().queue.len(),
            5,
            "closing keeps what is queued for the client to read"
        );
        assert_eq!(a.len(), 1);
        fast.0.borrow_mut().read_all();
        assert_eq!(fast.0.borrow().text(), "012345");
    }

    #[test]
    fn gone_clients_are_removed_on_announce_and_sweep() {
        let (mut a, outlets) = announcer_with(3, 5);
        outlets[1].0.borrow_mut().gone = true;
        assert_eq!(a.sweep(), 1);
        assert_eq!(a.len(), 2);
        outlets[2].0.borrow_mut().gone = true;
        assert_eq!(
            a.announce(&TestOutlet::chunk("x"), 1),
            Fanout {
                delivered: 1,
                events: 1,
                slow: 0,
                gone: 1
            }
        );
    }

    #[test]
    fn a_keep_alive_cuts_a_listener_that_took_nothing_since_the_previous_one() {
        let (mut a, outlets) = announcer_with(2, 100);
        let (live, stuck) = (&outlets[0], &outlets[1]);
        // First keep-alive: both get it.
        assert_eq!(a.keep_alive(&TestOutlet::chunk(":hb")).delivered, 2);
        live.0.borrow_mut().read_all();
        // Some events in between; the live client keeps reading, the stuck one does not.
        for _ in 0..3 {
            a.announce(&TestOutlet::chunk("e"), 1);
            live.0.borrow_mut().read_all();
        }
        let f = a.keep_alive(&TestOutlet::chunk(":hb"));
        assert_eq!(
            f,
            Fanout {
                delivered: 1,
                events: 0,
                slow: 0,
                gone: 1
            }
        );
        assert!(stuck.0.borrow().aborted);
        assert!(!live.0.borrow().aborted);
    }

    #[test]
    fn a_keep_alive_spares_a_busy_but_reading_listener() {
        let (mut a, outlets) = announcer_with(1, 100);
        a.keep_alive(&TestOutlet::chunk(":hb"));
        outlets[0].0.borrow_mut().read_all();
        // Lots written since, some still queued at the next keep-alive: that is fine.
        for _ in 0..10 {
            a.announce(&TestOutlet::chunk("e"), 1);
        }
        assert_eq!(a.keep_alive(&TestOutlet::chunk(":hb")).delivered, 1);
    }

    #[test]
    fn a_new_listener_is_not_judged_before_its_second_keep_alive() {
        let mut a = Announcer::<TestOutlet>::new(100);
        let o = TestOutlet::default();
        o.0.borrow_mut()
            .queue
            .extend([TestOutlet::chunk("retry"), TestOutlet::chunk("replay")]);
        a.add(o.clone(), (), 2);
        assert_eq!(a.keep_alive(&TestOutlet::chunk(":hb")).delivered, 1);
        assert_eq!(a.keep_alive(&TestOutlet::chunk(":hb")).gone, 1);
    }

    #[test]
    fn each_listener_gets_the_chunk_its_interest_picks_and_departures_are_reported() {
        let mut a: Announcer<TestOutlet, &str> = Announcer::new(5).reporting_departures();
        let outlets: Vec<TestOutlet> = (0..3).map(|_| TestOutlet::default()).collect();
        for (o, topic) in outlets.iter().zip(["books", "films", "books"]) {
            a.add(o.clone(), topic, 0);
        }
        let books = TestOutlet::chunk("a book");
        let f = a.announce_by(|topic| (*topic == "books").then_some((&books, 1)));
        assert_eq!(f.delivered, 2);
        assert_eq!(
            outlets[1].0.borrow().queue.len(),
            0,
            "not picked: nothing written"
        );
        outlets[2].0.borrow_mut().gone = true;
        a.announce_by(|topic| (*topic == "films").then_some((&books, 1)));
        assert_eq!(
            a.take_departed(),
            Vec::<&str>::new(),
            "a skipped listener is not judged"
        );
        a.announce(&books, 1);
        assert_eq!(a.take_departed(), ["books"]);
        assert_eq!(a.close_where(|topic| *topic == "films"), 1);
        assert!(outlets[1].0.borrow().closed);
        assert_eq!(a.take_departed(), ["films"]);
        assert_eq!(a.interests().copied().collect::<Vec<_>>(), ["books"]);
    }

    #[test]
    fn keep_alives_skip_seats_whose_far_end_keeps_its_own_but_a_probe_reaches_them() {
        let mut a: Announcer<TestOutlet, u32> = Announcer::new(5);
        let (held_here, sleeping) = (TestOutlet::default(), TestOutlet::default());
        sleeping.0.borrow_mut().sleeps = true;
        a.add(held_here.clone(), 0, 0);
        a.add(sleeping.clone(), 1, 0);
        assert_eq!(a.sleeping(), 1);
        let comment = TestOutlet::chunk(": keep-alive\n\n");
        a.keep_alive(&comment);
        assert_eq!(
            held_here.0.borrow().queue.len(),
            1,
            "the stream held here gets it"
        );
        assert!(
            sleeping.0.borrow().queue.is_empty(),
            "the Worker keeps that one alive"
        );
        a.announce(&comment, 0);
        assert_eq!(
            sleeping.0.borrow().queue.len(),
            1,
            "a probe reaches every seat"
        );
    }

    #[test]
    fn listeners_cut_at_their_far_end_are_removed_counted_and_reported_without_a_write() {
        let mut a: Announcer<TestOutlet, u32> = Announcer::new(5).reporting_departures();
        let outlets: Vec<TestOutlet> = (0..4).map(|_| TestOutlet::default()).collect();
        for (i, o) in outlets.iter().enumerate() {
            a.add(o.clone(), i as u32, 0);
        }
        let second = Rc::clone(&outlets[1].0);
        let slow = a.remove_where(|o| Rc::ptr_eq(&o.0, &second), Departure::Slow);
        assert_eq!((slow.slow, slow.gone), (1, 0));
        let gone = a.remove_where(|o| o.0.borrow().gone, Departure::Gone);
        assert_eq!(gone, Fanout::default(), "no outlet picked: nothing removed");
        outlets[3].0.borrow_mut().gone = true;
        let gone = a.remove_where(|o| o.0.borrow().gone, Departure::Gone);
        assert_eq!((gone.slow, gone.gone), (0, 1));
        assert_eq!(a.take_departed(), [1, 3]);
        assert_eq!(a.interests().copied().collect::<Vec<_>>(), [0, 2]);
        for o in &outlets {
            let c = o.0.borrow();
            assert!(
                c.queue.is_empty() && !c.closed && !c.aborted,
                "nothing written"
            );
        }
    }

    #[test]
    fn a_host_that_does_not_ask_for_departures_keeps_none() {
        let mut a: Announcer<TestOutlet, u32> = Announcer::new(1);
        for i in 0..100 {
            let o = TestOutlet::default();
            o.0.borrow_mut().gone = true;
            a.add(o, i, 0);
        }
        assert_eq!(a.sweep(), 100);
        assert!(a.departed.is_empty());
        assert!(a.take_departed().is_empty());
    }
}
