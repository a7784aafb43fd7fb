//! Publishing on the root (a channel's messages, one or a batch, and the hub's routed
//! events), and the flush that writes what was published to every seat and child.

use super::*;

impl<O: Outlet, L: EventLog, F: Filter> Stream<O, L, F> {
    /// Gives the message the next id and makes it durable as the acknowledgement mode
    /// says (stored, or its id reserved); it goes out to the listeners with the next
    /// [`Stream::flush`], together with everything else published by then. On an error
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
        debug_assert_eq!(self.origin, Origin::Root, "only the root publishes");
        let first = self.last_id.next();
        let events: Vec<StoredEvent> = messages
            .iter()
            .zip(first.0..)
            .map(|(message, n)| {
                let id = EventId(n);
                StoredEvent::new(id, now_ms, message.to_event(id).encode())
            })
            .collect();
        let listeners = self.subtree_listeners() as usize;
        let Some(last) = events.last().map(|e| e.id) else {
            return Ok(PublishedBatch {
                first,
                last: self.last_id,
                listeners,
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
            self.outbox.push(event, stored, None);
        }
        Ok(PublishedBatch {
            first,
            last,
            listeners,
        })
    }

    /// Writes every event published since the last flush to every listener and child, as
    /// one chunk encoded once and shared.
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
        let chunk = O::chunk(&outbox.frames);
        let fanout = outbox.announce(
            &mut self.announcer,
            &chunk,
            |seat| seat.after,
            |seat, route| seat.filter.admits(route),
            |seat| seat.filter.class(),
        );
        self.counters.record(fanout);
        outbox.announce_relays(&mut self.relays, &chunk, |relay| relay.after);
        fanout
    }

    /// Publishes one routed event (a Mercure update): its `frame` carries its public `key`
    /// as the stream's id, and only the seats whose filter admits `route` receive it, now
    /// and in replays. It gets the next sequence number, which orders the history and is
    /// never shown; it is stored before it is answered.
    pub fn publish_routed(
        &mut self,
        frame: String,
        key: String,
        route: Route,
        now_ms: u64,
    ) -> Result<EventId, LogError> {
        debug_assert_eq!(self.origin, Origin::Root, "only the root publishes");
        let id = self.last_id.next();
        let event = StoredEvent {
            id,
            at_ms: now_ms,
            frame,
            key: Some(key),
            route: Some(route.to_stored()),
        };
        self.log.append(std::slice::from_ref(&event))?;
        self.apply_history(now_ms);
        self.last_id = id;
        self.counters.published += 1;
        self.published_since_keep_alive += 1;
        self.outbox.push(event, true, Some(route));
        Ok(id)
    }
}
