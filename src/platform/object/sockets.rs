//! Seats on sockets ([`Delivery::Socket`](crate::platform::contract::Delivery)): the
//! object accepts each with the hibernation API and notes in its attachment what a later
//! instance needs to seat it again, so that the object may sleep between events while the
//! entry Worker holds the listener's response. An instance that starts finds the sockets
//! (`get_websockets`) and seats them as they were; a socket the Worker closed lets its
//! seat go, counted as what the Worker said.

use serde::{Deserialize, Serialize};
use worker::{web_sys, WebSocket, WebSocketIncomingMessage, WebSocketPair};

use super::{Face, StreamObject};
use crate::domain::{ChannelName, NodePath};
use crate::platform::contract::{cut_of, Target, SOCKET_GONE};
use crate::platform::error::Error;
use crate::platform::host::now_ms;
use crate::platform::outlet::{restart, SeatOutlet, SocketOutlet};
use crate::platform::seat_specs;

/// What a seat's socket carries for a later instance of its object: which object it is
/// (a close may be the first thing a fresh instance hears), and the face's part of the
/// seat (the hub's subscriber as the Worker verified it).
#[derive(Serialize, Deserialize)]
pub(super) struct SeatNote {
    /// The channel whose objects these are; none: the hub's.
    channel: Option<String>,
    node: String,
    /// The seat's id among this object's sockets: how a close finds its seat (a feed's
    /// tells it from the node's other feeds).
    pub(super) seat: u64,
    /// The face's spec of the seat, as JSON (text crosses into JavaScript and back as it
    /// was, where a unit or an `Option` would not); none: too big for a note, kept in
    /// storage ([`seat_specs`]).
    spec: Option<String>,
    /// Whether this is the node's feed from its parent ([`super::feed`]), not a seat.
    #[serde(default)]
    pub(super) feed: bool,
    /// On a feed: the last id the node relayed (none yet).
    #[serde(default)]
    pub(super) relayed: Option<u64>,
    /// On a feed: the audience the node last reported to its parent.
    #[serde(default)]
    pub(super) reported: Option<u64>,
    /// Whether the seat is over: this object closed its socket (its stream ended), and
    /// the close is on its way (see `outlet::CLOSED_FIELD`).
    #[serde(default)]
    pub(super) closed: bool,
}

/// The most of a seat's spec (as JSON) its note carries; a bigger one is kept in storage.
/// Cloudflare bounds what a socket's attachment may hold (2 KiB by its documentation).
const NOTE_SPEC_BYTES: usize = 1536;

impl SeatNote {
    /// A node's feed's note.
    pub(super) fn feed(target: &Target, node: &NodePath, id: u64) -> SeatNote {
        SeatNote {
            channel: channel_of(target),
            node: node.to_string(),
            seat: id,
            spec: None,
            feed: true,
            relayed: None,
            reported: None,
            closed: false,
        }
    }

    fn target(&self) -> Result<Target, Error> {
        Ok(match &self.channel {
            None => Target::Hub,
            Some(name) => Target::Channel(
                ChannelName::parse(name).map_err(|e| Error::Contract(e.to_string()))?,
            ),
        })
    }

    fn node(&self) -> Result<NodePath, Error> {
        NodePath::parse(&self.node).map_err(|_| Error::Contract("a socket's node".into()))
    }
}

/// What a note says of its target: the channel's name; none for the hub.
fn channel_of(target: &Target) -> Option<String> {
    match target {
        Target::Channel(name) => Some(name.as_str().to_string()),
        Target::Hub => None,
    }
}

pub(super) fn note_of(socket: &WebSocket) -> Result<SeatNote, Error> {
    socket
        .deserialize_attachment()?
        .ok_or_else(|| Error::Contract("a socket without its note".into()))
}

impl<F: Face> StreamObject<F> {
    /// Opens this object, when it is not open, as `socket`'s note says it is (a fresh
    /// instance that a socket's close or an alarm woke knows nothing else); says whether
    /// it is open.
    fn open_as_noted(&self, socket: &WebSocket) -> bool {
        if self.host.is_open() {
            return true;
        }
        let opened =
            note_of(socket).and_then(|note| self.ensure_open(&note.target()?, &note.node()?));
        if let Err(e) = &opened {
            worker::console_error!("an object could not open from a socket's note: {e}");
        }
        opened.is_ok()
    }

    /// Opens this object from its sockets' notes, when it is not open and has any (an
    /// alarm woke a fresh instance); says whether it is open.
    pub(super) fn open_from_sockets(&self) -> bool {
        self.host.is_open()
            || (self.state.get_websockets().first()).is_some_and(|s| self.open_as_noted(s))
    }

    /// A new socket for a seat of `spec`, its note attached, accepted here with the
    /// hibernation API: the outlet to write to, the end to answer with, and a guard that
    /// closes the socket unless its seat is made.
    pub(super) fn open_socket(
        &self,
        spec: F::Spec,
    ) -> Result<(SeatOutlet, WebSocket, Unseated), Error> {
        let pair = WebSocketPair::new()?;
        let target = self.target();
        let seat = self.next_seat_id();
        self.state.accept_web_socket(&pair.server);
        let server = pair.server.as_ref().clone();
        // From here the guard closes the socket unless its seat is made (a note that
        // cannot be kept included).
        let unseated = Unseated(Some(server.clone()));
        let spec = self.note_or_keep(seat, spec)?;
        pair.server.serialize_attachment(SeatNote {
            channel: channel_of(&target),
            node: self.path().to_string(),
            seat,
            spec,
            feed: false,
            relayed: None,
            reported: None,
            closed: false,
        })?;
        let outlet = SocketOutlet::new(server, seat);
        Ok((SeatOutlet::Socket(outlet), pair.client, unseated))
    }

    /// Seats again the sockets an earlier instance of this object left, when it slept
    /// with them on the root, those closing too (their close, which may be what woke this
    /// instance, then finds its seat and is counted as what it was). One whose instance
    /// failed may have stored events it never wrote to them, and a node's recent events
    /// and stream from its parent are gone with its instance: their sockets are closed for
    /// the Worker to attach again, resuming after their last id.
    pub(super) fn restore_sockets(&self) {
        // A seat this object closed (its stream ended) is over: nothing to restore.
        let noted: Vec<_> = (self.state.get_websockets().into_iter())
            .map(|s| (note_of(&s), s))
            .filter(|(note, _)| !note.as_ref().is_ok_and(|n| n.closed))
            .collect();
        if noted.is_empty() {
            return;
        }
        let feeds = noted
            .iter()
            .filter_map(|(note, _)| note.as_ref().ok().filter(|n| n.feed));
        // A node goes on from its feed's note; without one (or with its state lost) its
        // listeners attach again.
        let lost = self.streams.lost_state();
        let restore = !lost && (self.path().is_root() || self.resume_from_feed(feeds));
        let mut seats = Vec::new();
        let mut kept = Vec::new();
        for (note, socket) in noted {
            let raw: &web_sys::WebSocket = socket.as_ref();
            if !restore {
                restart(raw);
                continue;
            }
            if note.as_ref().is_ok_and(|n| n.feed) {
                continue;
            }
            let seat = note.and_then(|note| {
                let spec = self.spec_of(note.seat, note.spec)?;
                Ok((note.seat, self.with(|h| F::restore(h, spec))?))
            });
            match seat {
                Ok((seat, filter)) => {
                    kept.push(seat);
                    let outlet = SocketOutlet::new(raw.clone(), seat);
                    seats.push((filter, SeatOutlet::Socket(outlet)));
                }
                Err(e) => {
                    worker::console_error!("a socket's seat could not be restored: {e}");
                    restart(raw);
                }
            }
        }
        seat_specs::keep_only(&self.state.storage().sql(), &kept);
        // A start with seats is a start that counts, whatever woke it.
        self.count_start();
        let restored = self.with(|h| h.stream.restore(seats));
        worker::console_log!("object {} restored {restored} seats", self.path());
    }

    /// What a new seat's note carries of its spec: all of it, or, when too big, nothing
    /// (kept in storage under the seat's id instead).
    fn note_or_keep(&self, seat: u64, spec: F::Spec) -> Result<Option<String>, Error> {
        let json = serde_json::to_string(&spec).map_err(|e| Error::Contract(e.to_string()))?;
        if json.len() <= NOTE_SPEC_BYTES {
            return Ok(Some(json));
        }
        seat_specs::put(&self.state.storage().sql(), seat, &json)?;
        Ok(None)
    }

    /// A seat's spec, from its note or from storage.
    fn spec_of(&self, seat: u64, noted: Option<String>) -> Result<F::Spec, Error> {
        let json = noted.or_else(|| seat_specs::get(&self.state.storage().sql(), seat));
        let spec = json.and_then(|json| serde_json::from_str(&json).ok());
        spec.ok_or_else(|| Error::Contract(format!("seat {seat}'s spec is not kept")))
    }

    /// An id for a new seat, unique among this object's sockets (an earlier instance's
    /// seats were made at least the runtime's idle time before).
    pub(super) fn next_seat_id(&self) -> u64 {
        let n = self.seats_made.get().wrapping_add(1);
        self.seats_made.set(n);
        // Below 2^53, as a note's numbers must be to travel through JavaScript.
        now_ms() * 1024 + n % 1024
    }

    /// A seat's socket closed: by the Worker (`code` and `reason` say why it cut the
    /// listener, [`cut_of`]), or it failed. Its seat goes; a fresh instance learns from
    /// the socket which object it is.
    pub async fn socket_closed(
        &self,
        socket: WebSocket,
        code: usize,
        reason: &str,
    ) -> worker::Result<()> {
        // The close of a seat this object closed: it was let go then. A fresh instance
        // has nothing to do for it.
        let over = note_of(&socket).is_ok_and(|n| n.closed);
        if (over && !self.host.is_open()) || !self.open_as_noted(&socket) {
            return Ok(());
        }
        let code = u16::try_from(code).unwrap_or(SOCKET_GONE);
        let (why, undelivered) = cut_of(code, reason);
        let seat = match note_of(&socket) {
            Ok(note) if note.feed => None,
            Ok(note) if note.spec.is_none() => {
                seat_specs::forget(&self.state.storage().sql(), note.seat);
                Some(note.seat)
            }
            Ok(note) => Some(note.seat),
            Err(e) => {
                worker::console_error!("a closed socket without its note: {e}");
                return Ok(());
            }
        };
        match seat {
            None => self.feed_closed(&socket),
            Some(seat) => self.with(|h| {
                let this = |o: &SeatOutlet| o.socket().is_some_and(|s| s.is(seat));
                h.stream.leave(this, why, undelivered);
                F::settle(h);
                h.keep_counts();
            }),
        }
        // A node reports its audience (and, emptied, lets its feed go) at the alarm.
        if let Err(e) = self.arm_keep_alive().await {
            worker::console_error!("{e}");
        }
        Ok(())
    }

    /// A message over one of this object's sockets: a node's feed from its parent
    /// ([`super::feed`]); nothing else is expected.
    pub async fn socket_message(
        &self,
        socket: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> worker::Result<()> {
        // The close of a seat this object closed: it was let go then. A fresh instance
        // has nothing to do for it.
        let over = note_of(&socket).is_ok_and(|n| n.closed);
        if (over && !self.host.is_open()) || !self.open_as_noted(&socket) {
            return Ok(());
        }
        let Some(note) = note_of(&socket).ok().filter(|n| n.feed) else {
            return Ok(());
        };
        match message {
            WebSocketIncomingMessage::Binary(chunk) => self.fed(&socket, note, chunk),
            WebSocketIncomingMessage::String(text) => {
                self.fed_position(&socket, note, &text);
                // Whoever asked for it may have gone meanwhile: the alarm lets the feed
                // go when no one is seated by then.
                let at = self.with(|h| now_ms() + h.config.keep_alive_ms());
                if let Err(e) = self.arm_deadline(at).await {
                    worker::console_error!("{e}");
                }
            }
        }
        Ok(())
    }
}

/// A seat's socket until its seat is made: closed when dropped before (a refused join),
/// so that no socket stays open without a seat. Dropped only within the call that made
/// it, never when a sleeping object is evicted.
pub(super) struct Unseated(Option<web_sys::WebSocket>);

impl Unseated {
    /// Its seat is made: the socket is the seat's now.
    pub(super) fn seated(mut self) {
        self.0 = None;
    }
}

impl Drop for Unseated {
    fn drop(&mut self) {
        if let Some(socket) = self.0.take() {
            crate::platform::outlet::mark_closed(&socket);
            restart(&socket);
        }
    }
}
