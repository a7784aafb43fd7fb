//! Resumes: what a seat that resumes after an id is written before its live stream, from
//! what this object holds or from a replay an object above answered, filtered per seat;
//! and what this object answers a child that asks it for a replay.

use super::*;

impl<O: Outlet, L: EventLog, F: Filter> Stream<O, L, F> {
    /// Starts a listener or relay with the replay an object above answered (`replay`,
    /// which brings it to `upstream`), then what this object has after that. A seat that
    /// is ahead of this object gets only the events after `upstream`.
    ///
    /// `through` is what the replay was asked to reach ([`Stream::holds_through`] when
    /// asked). Only the root answers below it, when its head went back under this node's:
    /// this node's ids are not the root's until its own stream from the parent starts over
    /// ([`Stream::relay_started`]), so it seats no one on that answer (`NotCovered`).
    pub fn join_replayed(
        &mut self,
        seat: SeatKind<F>,
        outlet: O,
        replay: &str,
        upstream: EventId,
        through: EventId,
        now_ms: u64,
    ) -> Result<EventId, SubscribeError> {
        if upstream < through {
            return Err(SubscribeError::NotCovered);
        }
        let from = if upstream < self.last_id {
            StartAt::After(upstream)
        } else {
            StartAt::Ahead(upstream)
        };
        // A child takes the replay as it came, routes and all; a listener takes what its
        // filter admits, as a client's stream carries it.
        let replay = match &seat {
            SeatKind::Relay(_) => replay.to_string(),
            SeatKind::Listener(filter) => listener_replay(replay, filter),
        };
        self.open_seat(seat, outlet, &replay, from, now_ms)
    }

    /// What a resume after `after` replays (gap notices and events), and the id it brings
    /// the listener to, for a child object to pass on. A child asks for at least
    /// `through` (its own [`Stream::holds_through`]), so that it can go on from the
    /// answer with what it holds; a node that is not that far yet says `NotCovered`.
    /// The root answers every replay, whatever `through`: its head is the channel's, and
    /// an answer below `through` tells the child that the head went back.
    /// Each event comes as objects write to each other ([`protocol::relayed`]: when it
    /// was published, so that the child keeps it as long as the root would, and a routed
    /// event's sequence number and route, so that the child filters it for its seats).
    pub fn replay(
        &mut self,
        after: EventId,
        through: EventId,
        now_ms: u64,
    ) -> Result<(String, EventId), SubscribeError> {
        self.flush();
        if !self.reaches(through) {
            return Err(SubscribeError::NotCovered);
        }
        let text = self.replay_for(after, None, now_ms)?;
        Ok((text, self.last_id))
    }

    /// The replay for `seat` resuming after `after`, when this object holds it: for a
    /// child's relay, every event with its publication time; for a listener, what its
    /// filter admits.
    pub(super) fn replay_text(
        &mut self,
        after: EventId,
        seat: &SeatKind<F>,
        now_ms: u64,
    ) -> Result<String, SubscribeError> {
        match seat {
            SeatKind::Listener(filter) => self.replay_for(after, Some(filter), now_ms),
            SeatKind::Relay(_) => self.replay_for(after, None, now_ms),
        }
    }

    /// The replay after `after`: gap notices where the history has holes (when the face
    /// tells them: [`Filter::TELLS_GAPS`]) and the kept events `filter` admits (all, with
    /// none). With no filter the replay is for another object: every event as objects
    /// write to each other ([`protocol::relayed`]), with its publication time and, when
    /// routed, its sequence number and route; a listener's has the frames alone.
    pub(super) fn replay_for(
        &mut self,
        after: EventId,
        filter: Option<&F>,
        now_ms: u64,
    ) -> Result<String, SubscribeError> {
        // Nothing older than the age limit is replayed, however long since the last prune.
        self.settings
            .history
            .apply(&mut self.log, now_ms)
            .map_err(SubscribeError::Log)?;
        self.note_pruned();
        if !self.holds_resume(after) {
            return Err(SubscribeError::NotCovered);
        }
        let plan = plan_resume(&self.log, after, self.last_id).map_err(SubscribeError::Log)?;
        let mut text = String::new();
        for step in plan.steps {
            match step {
                Replay::Gap(gap) if F::TELLS_GAPS => gap_notice(&gap).encode_into(&mut text),
                Replay::Gap(_) => {}
                Replay::Event(event) if !admitted(filter, &event) => {}
                Replay::Event(event) if filter.is_none() => {
                    let route = event.route.as_deref().map(|r| (event.id.0, r));
                    text.push_str(&protocol::relayed(&event.frame, Some(event.at_ms), route))
                }
                Replay::Event(event) => text.push_str(&event.frame),
            }
        }
        Ok(text)
    }
}

/// What a listener with `filter` takes of a replay an object above answered for a child
/// (each event as written between objects, [`protocol::relayed`]): the frames it admits,
/// without what only objects read. On a routed face a frame without its route is no
/// one's.
fn listener_replay<F: Filter>(replay: &str, filter: &F) -> String {
    protocol::FrameReader::new()
        .feed(replay.as_bytes())
        .into_iter()
        .filter(|frame| match frame.route.as_deref() {
            None => !F::ROUTED,
            Some(stored) => Route::from_stored(stored).is_some_and(|route| filter.admits(&route)),
        })
        .map(|frame| frame.text)
        .collect()
}

/// Whether `filter` (none: everyone) admits a kept event: one without a route is every
/// seat's, unless the face routes every event (then it is no one's); one whose stored
/// route does not read back is no one's.
fn admitted<F: Filter>(filter: Option<&F>, event: &StoredEvent) -> bool {
    match (filter, event.route.as_deref()) {
        (None, _) => true,
        (Some(_), None) => !F::ROUTED,
        (Some(filter), Some(stored)) => {
            Route::from_stored(stored).is_some_and(|route| filter.admits(&route))
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
