//! A node's stream from its parent over a socket, with objects that sleep
//! (`HIBERNATE=1`): the node asks its parent to feed it ([`StreamRequest::FeedMe`]); the
//! parent opens a socket to it ([`StreamRequest::Feed`]), seats it as a child on that
//! socket, and writes the relay's start to it, then the position it started at and the id
//! it was asked after, then every later chunk. The node
//! accepts the socket with the hibernation API, so that a node whose seats all sleep
//! sleeps too, woken by the next chunk. The parent holds the socket's other end, and so
//! stays awake: of a tree, only the objects with children do.
//!
//! The socket's note keeps the last id the node relayed: a fresh instance of the node goes
//! on from there ([`crate::domain::Stream::relay_resumed`]), and seats its listeners
//! again. When the socket closes (the parent restarted), the node asks again.

use worker::{web_sys, Response, WebSocket, WebSocketPair};

use super::calls::ask_node;
use super::sockets::{note_of, SeatNote};
use super::uplink::LinkState;
use super::{Face, StreamObject, Via};
use crate::domain::{EventId, NodePath, SeatKind};
use crate::platform::contract::{StreamCall, StreamRequest, SOCKET_ENDED};
use crate::platform::error::Error;
use crate::platform::outlet::{restart, OPEN};
use crate::protocol::FrameReader;

/// How the text message that ends a feed's start begins ([`position_message`]).
const POSITION_PREFIX: &str = "position:";

impl<F: Face> StreamObject<F> {
    /// On the parent: opens a socket to `child` and feeds it from there, resuming after
    /// `last_seen`; the start it writes ends with the position the child's stream starts
    /// at and the id it was asked after ([`position_message`]).
    pub(super) async fn feed(
        &self,
        child: NodePath,
        last_seen: Option<EventId>,
    ) -> Result<Response, Error> {
        if self.with(|h| h.stream.has_ended()) {
            return Err(crate::domain::StreamEnded.into());
        }
        let call = StreamCall::to_node(self.target(), child.clone(), StreamRequest::Feed);
        let response = ask_node(&call, &self.env, &[101]).await?;
        let socket = response
            .websocket()
            .ok_or_else(|| Error::Contract("a 101 without its socket".into()))?;
        socket.accept()?;
        let raw: web_sys::WebSocket = socket.as_ref().clone();
        // A child that asks again has one feed: the new one.
        self.with(|h| h.stream.close_relays_of(&child));
        let via = Via::Feed(raw.clone(), self.next_seat_id());
        let position = match self.seat(SeatKind::Relay(child), last_seen, via).await {
            Ok((_, position)) => position,
            Err(e) => {
                restart(&raw);
                return Err(e);
            }
        };
        if let Err(e) = raw.send_with_str(&position_message(position, last_seen)) {
            // Closed meanwhile: the child asks again.
            worker::console_error!("a child's feed closed as it started: {e:?}");
        }
        Ok(Response::empty()?.with_status(204))
    }

    /// On the node: accepts the socket its parent feeds it over.
    pub(super) fn accept_feed(&self) -> Result<Response, Error> {
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        pair.server.serialize_attachment(SeatNote::feed(
            &self.target(),
            &self.path(),
            self.next_seat_id(),
        ))?;
        Ok(Response::from_websocket(pair.client)?)
    }

    /// On the node: a message over its feed, a chunk of the relay (taken once the start
    /// has brought the parent's position, kept until then), or that position.
    pub(super) fn fed(&self, socket: &WebSocket, note: SeatNote, chunk: Vec<u8>) {
        if self.uplink.state.get() != LinkState::Up {
            self.uplink.pending.borrow_mut().push(chunk);
            return;
        }
        self.ingest(&chunk);
        self.note_relayed(socket, note);
    }

    /// On the node: the parent's position, after the start of the feed: the stream is up
    /// from here (any other feed goes), and what came before it is taken. (A node that
    /// has no one to serve by the next alarm lets it go there.)
    pub(super) fn fed_position(&self, socket: &WebSocket, note: SeatNote, text: &str) {
        let Some((position, asked)) = read_position(text) else {
            return worker::console_error!("a feed's message: {text}");
        };
        self.with(|h| h.stream.relay_started(position, asked));
        self.uplink.state.set(LinkState::Up);
        let pending = self.uplink.pending.take();
        for chunk in pending {
            self.ingest(&chunk);
        }
        let this = Some(note.seat);
        self.note_relayed(socket, note);
        for other in self.feeds() {
            if feed_id(&other) != this {
                restart(other.as_ref());
            }
        }
    }

    /// Takes a chunk of the relay (whole frames: each is one write of the parent's).
    fn ingest(&self, chunk: &[u8]) {
        let frames = FrameReader::new().feed(chunk);
        if frames.is_empty() {
            return;
        }
        self.with(|h| h.relayed(&frames));
    }

    /// Notes on the feed's socket (`note`, as read) the last id relayed, for a later
    /// instance.
    fn note_relayed(&self, socket: &WebSocket, mut note: SeatNote) {
        note.relayed = self.with(|h| h.stream.resume_after()).map(|id| id.0);
        if let Err(e) = socket.serialize_attachment(note) {
            worker::console_error!("a feed's note: {e}");
        }
    }

    /// Notes on the feed's socket the audience last reported to the parent, for a later
    /// instance to report only what changed.
    pub(super) fn note_reported(&self, reported: u64) {
        for socket in self.feeds() {
            note_feed(&socket, |note| note.reported = Some(reported));
        }
    }

    /// On the node: its feed `closed` (the parent restarted, or let it go): the node asks
    /// again while anyone is seated here, and reports its audience anew (a parent that
    /// restarted does not know it); a feed that closes while the node is asking is the
    /// asking's to handle, and one that closes beside another feed changes nothing.
    pub(super) fn feed_closed(&self, closed: &WebSocket) {
        let closed = feed_id(closed);
        let open = self.feeds().into_iter().any(|s| {
            let raw: &web_sys::WebSocket = s.as_ref();
            feed_id(&s) != closed && raw.ready_state() == OPEN
        });
        if open || self.uplink.asking.get() {
            return;
        }
        self.uplink.state.set(LinkState::Down);
        self.uplink.pending.take();
        if self.with(|h| h.seated()) {
            self.with(|h| h.reported = u64::MAX);
            self.start_uplink();
        }
    }

    /// This node's feeds (normally one).
    fn feeds(&self) -> Vec<WebSocket> {
        let sockets = self.state.get_websockets();
        sockets
            .into_iter()
            .filter(|s| note_of(s).is_ok_and(|n| n.feed))
            .collect()
    }

    /// On a fresh instance of a node: goes on from its feed's note, when it has one;
    /// says whether it did (its listeners' seats can then be restored).
    pub(super) fn resume_from_feed<'n>(&self, feeds: impl Iterator<Item = &'n SeatNote>) -> bool {
        // A feed that is closing (its close may be what woke this instance) still says
        // what the listeners here have; its close then asks again.
        let noted = feeds
            .filter_map(|n| Some((n.relayed?, n.reported)))
            .max_by_key(|(relayed, _)| *relayed);
        let Some((relayed, reported)) = noted else {
            return false;
        };
        self.with(|h| {
            h.stream.relay_resumed(EventId(relayed));
            // Not known: reported again at the next alarm.
            h.reported = reported.unwrap_or(u64::MAX);
        });
        self.uplink.state.set(LinkState::Up);
        true
    }

    /// On a node left with no one: lets its feed go (the parent lets its seat go).
    pub(super) fn drop_feed(&self) {
        if !self.with(|h| h.config.hibernate) {
            return;
        }
        for socket in self.feeds() {
            let raw: &web_sys::WebSocket = socket.as_ref();
            let _ = raw.close_with_code_and_reason(SOCKET_ENDED, "no one left");
        }
        self.uplink.state.set(LinkState::Down);
    }
}

/// A feed's id among the node's feeds (the runtime may hand out a socket as different
/// objects, so a feed is known by its note).
fn feed_id(socket: &WebSocket) -> Option<u64> {
    note_of(socket).ok().map(|note| note.seat)
}

/// Changes a feed's note.
fn note_feed(socket: &WebSocket, change: impl FnOnce(&mut SeatNote)) {
    let noted = note_of(socket).and_then(|mut note| {
        change(&mut note);
        Ok(socket.serialize_attachment(note)?)
    });
    if let Err(e) = noted {
        worker::console_error!("a feed's note: {e}");
    }
}

/// The text message that ends a feed's start: the parent's position and the id the
/// child asked after (none: from now), as [`crate::domain::Stream::relay_started`] takes
/// them. It travels on the socket, after the start, so a child knows both in order
/// whatever became of the request that asked.
fn position_message(position: EventId, asked: Option<EventId>) -> String {
    let asked = asked.map(|id| id.to_string()).unwrap_or_default();
    format!("{POSITION_PREFIX}{position}:{asked}")
}

/// Reads [`position_message`] back.
fn read_position(text: &str) -> Option<(EventId, Option<EventId>)> {
    let (position, asked) = text.strip_prefix(POSITION_PREFIX)?.split_once(':')?;
    let asked = match asked {
        "" => None,
        id => Some(EventId::parse(id).ok()?),
    };
    Some((EventId::parse(position).ok()?, asked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feeds_position_reads_back_as_written() {
        for (position, asked) in [(EventId(0), None), (EventId(42), Some(EventId(7)))] {
            let text = position_message(position, asked);
            assert_eq!(read_position(&text), Some((position, asked)), "{text}");
        }
        assert_eq!(read_position("position:1"), None);
        assert_eq!(read_position("position:x:"), None);
        assert_eq!(read_position("elsewhere:1:2"), None);
    }
}
