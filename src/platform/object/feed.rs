//! A node's stream from its parent over a socket, with objects that sleep
//! (`HIBERNATE=1`): the node asks its parent to feed it ([`StreamRequest::FeedMe`]); the
//! parent opens a socket to it ([`StreamRequest::Feed`]), seats it as a child on that
//! socket, and writes the relay's chunks to it, then the position it started at. The node
//! accepts the socket with the hibernation API, so that a node whose seats all sleep
//! sleeps too, woken by the next chunk. The parent holds the socket's other end, and so
//! stays awake: of a tree, only the objects with children do.
//!
//! The socket's note keeps the last id the node relayed: a fresh instance of the node goes
//! on from there ([`crate::domain::Stream::relay_resumed`]), and seats its listeners
//! again. When the socket closes (the parent restarted), the node asks again.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use worker::{web_sys, Response, WebSocket, WebSocketPair};

use super::calls::ask_node;
use super::sockets::{note_of, SeatNote};
use super::uplink::LinkState;
use super::{Face, StreamObject, Via};
use crate::domain::{EventId, NodePath, SeatKind};
use crate::platform::contract::{StreamCall, StreamRequest, POSITION_HEADER, SOCKET_ENDED};
use crate::platform::error::Error;
use crate::platform::host::now_ms;
use crate::platform::outlet::{restart, SeatOutlet, SocketOutlet};
use crate::protocol::FrameReader;

/// The text message that ends a feed's start: the parent's position, as the engine's
/// [`crate::domain::Stream::relay_started`] takes it.
const POSITION_PREFIX: &str = "position:";

impl<F: Face> StreamObject<F> {
    /// On the parent: opens a socket to `child` and feeds it from there, resuming after
    /// `last_seen`; answers with the position the child's stream started at.
    pub(super) async fn feed(
        &self,
        child: NodePath,
        last_seen: Option<EventId>,
    ) -> Result<Response, Error> {
        let call = StreamCall::to_node(self.target(), child.clone(), StreamRequest::Feed);
        let response = ask_node(&call, &self.env, &[101]).await?;
        let socket = response
            .websocket()
            .ok_or_else(|| Error::Contract("a 101 without its socket".into()))?;
        socket.accept()?;
        let raw: web_sys::WebSocket = socket.as_ref().clone();
        let seat = self.next_seat_id();
        let via = Via::Dialed(raw.clone(), seat);
        let position = match self.seat(SeatKind::Relay(child), last_seen, via).await {
            Ok((_, position)) => position,
            Err(e) => {
                restart(&raw);
                return Err(e);
            }
        };
        self.watch_child(&raw, seat);
        let _ = raw.send_with_str(&format!("{POSITION_PREFIX}{position}"));
        let mut answer = Response::empty()?.with_status(204);
        answer
            .headers_mut()
            .set(POSITION_HEADER, &position.to_string())?;
        Ok(answer)
    }

    /// On the parent: lets the child's seat go when its socket closes (the child emptied,
    /// or failed).
    fn watch_child(&self, socket: &web_sys::WebSocket, seat: u64) {
        let hosted = self.host.shared();
        let closed = Closure::<dyn FnMut(web_sys::CloseEvent)>::new(move |_| {
            hosted.with(|h| {
                h.stream
                    .let_relays_go(|o: &SeatOutlet| o.socket().is_some_and(|s| s.is(seat)))
            });
        });
        let _ = socket.add_event_listener_with_callback("close", closed.as_ref().unchecked_ref());
        // It lives as long as the socket, which the runtime holds.
        closed.forget();
    }

    /// On the node: accepts the socket its parent feeds it over.
    pub(super) fn accept_feed(&self) -> Result<Response, Error> {
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        pair.server
            .serialize_attachment(SeatNote::feed(&self.target(), &self.path(), None))?;
        Ok(Response::from_websocket(pair.client)?)
    }

    /// On the node: a message over its feed, a chunk of the relay (taken once the start
    /// has brought the parent's position, kept until then), or that position.
    pub(super) fn fed(&self, socket: &WebSocket, chunk: Vec<u8>) {
        if self.uplink.state.get() != LinkState::Up {
            self.uplink.pending.borrow_mut().push(chunk);
            return;
        }
        self.ingest(&chunk);
        self.note_relayed(socket);
    }

    /// On the node: the parent's position, after the start of the feed.
    pub(super) fn fed_position(&self, socket: &WebSocket, text: &str) {
        let Some(position) = text
            .strip_prefix(POSITION_PREFIX)
            .and_then(|p| EventId::parse(p).ok())
        else {
            return worker::console_error!("a feed's message: {text}");
        };
        let asked = self.uplink.asked.get();
        self.with(|h| h.stream.relay_started(position, asked));
        self.uplink.state.set(LinkState::Up);
        let pending = self.uplink.pending.take();
        for chunk in pending {
            self.ingest(&chunk);
        }
        self.note_relayed(socket);
    }

    /// Takes a chunk of the relay (whole frames: each is one write of the parent's).
    fn ingest(&self, chunk: &[u8]) {
        let frames = FrameReader::new().feed(chunk);
        if frames.is_empty() {
            return;
        }
        self.with(|h| {
            h.stream.ingest(&frames, now_ms());
            F::settle(h);
            h.keep_counts();
        });
    }

    /// Notes on the feed's socket the last id relayed, for a later instance.
    fn note_relayed(&self, socket: &WebSocket) {
        let relayed = self.with(|h| h.stream.resume_after());
        note_feed(socket, |note| note.relayed = relayed.map(|id| id.0));
    }

    /// Notes on the feed's socket the audience last reported to the parent, for a later
    /// instance to report only what changed.
    pub(super) fn note_reported(&self, reported: u64) {
        for socket in self.state.get_websockets() {
            if note_of(&socket).is_ok_and(|n| n.feed) {
                note_feed(&socket, |note| note.reported = Some(reported));
            }
        }
    }

    /// On the node: its feed closed (the parent restarted, or let it go): it asks again
    /// while anyone is seated here.
    pub(super) fn feed_closed(&self) {
        let open = self.state.get_websockets().into_iter().any(|s| {
            let raw: &web_sys::WebSocket = s.as_ref();
            raw.ready_state() == OPEN && note_of(&s).is_ok_and(|n| n.feed)
        });
        if open {
            return;
        }
        self.uplink.state.set(LinkState::Down);
        self.uplink.pending.take();
        if self.with(|h| h.seated()) {
            self.start_uplink();
        }
    }

    /// On a fresh instance of a node: goes on from its feed's note, when it has one;
    /// says whether it did (its listeners' seats can then be restored).
    pub(super) fn resume_from_feed(&self, sockets: &[WebSocket]) -> bool {
        let noted = sockets.iter().find_map(|s| {
            let raw: &web_sys::WebSocket = s.as_ref();
            let note = note_of(s).ok().filter(|n| n.feed)?;
            let relayed = (raw.ready_state() == OPEN)
                .then_some(note.relayed)
                .flatten()?;
            Some((relayed, note.reported))
        });
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
        for socket in self.state.get_websockets() {
            if note_of(&socket).is_ok_and(|n| n.feed) {
                let raw: &web_sys::WebSocket = socket.as_ref();
                let _ = raw.close_with_code_and_reason(SOCKET_ENDED, "no one left");
            }
        }
        self.uplink.state.set(LinkState::Down);
    }
}

/// `WebSocket.OPEN`.
const OPEN: u16 = 1;

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

/// The child's seat on the parent: its socket.
pub(super) fn dialed_outlet(socket: &web_sys::WebSocket, seat: u64) -> SeatOutlet {
    SeatOutlet::Socket(SocketOutlet::new(socket.clone(), seat))
}
