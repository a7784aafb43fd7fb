//! Seats on sockets ([`Delivery::Socket`](crate::platform::contract::Delivery)): the
//! object accepts each with the hibernation API and notes in its attachment what a later
//! instance needs to seat it again, so that the object may sleep between events while the
//! entry Worker holds the listener's response. An instance that starts finds the sockets
//! (`get_websockets`) and seats them as they were; a socket the Worker closed lets its
//! seat go, counted as what the Worker said.

use serde::{Deserialize, Serialize};
use worker::{WebSocket, WebSocketPair};

use super::{Face, StreamObject};
use crate::domain::{ChannelName, NodePath, Outlet};
use crate::platform::contract::{cut_of, Target};
use crate::platform::error::Error;
use crate::platform::outlet::{SeatOutlet, SocketOutlet};

/// What a seat's socket carries for a later instance of its object: which object it is
/// (a close may be the first thing a fresh instance hears), and the face's part of the
/// seat (the hub's subscriber as the Worker verified it).
#[derive(Serialize, Deserialize)]
struct SeatNote<S> {
    /// The channel whose objects these are; none: the hub's.
    channel: Option<String>,
    node: String,
    spec: S,
}

impl<S> SeatNote<S> {
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

fn note_of<S: serde::de::DeserializeOwned>(socket: &WebSocket) -> Result<SeatNote<S>, Error> {
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
        let opened = note_of::<F::Spec>(socket)
            .and_then(|note| self.ensure_open(&note.target()?, &note.node()?));
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

    /// A new socket for a seat of `spec`, accepted here with the hibernation API, its
    /// note attached: the outlet to write to, and the end to answer with.
    pub(super) fn open_socket(&self, spec: F::Spec) -> Result<(SeatOutlet, WebSocket), Error> {
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        let target = self.target();
        pair.server.serialize_attachment(SeatNote {
            channel: match &target {
                Target::Channel(name) => Some(name.as_str().to_string()),
                Target::Hub => None,
            },
            node: self.path().to_string(),
            spec,
        })?;
        let outlet = SocketOutlet::new(pair.server.as_ref().clone());
        Ok((SeatOutlet::Socket(outlet), pair.client))
    }

    /// Seats again the sockets an earlier instance of this object left, when it slept
    /// with them on the root. One whose instance failed may have stored events it never
    /// wrote to them, and a node's recent events and stream from its parent are gone with
    /// its instance: their sockets attach again, resuming after their last id.
    pub(super) fn restore_sockets(&self) {
        let sockets = self.state.get_websockets();
        if sockets.is_empty() {
            return;
        }
        let restore = self.path().is_root() && !self.streams.lost_state();
        let mut seats = Vec::new();
        for socket in sockets {
            let outlet = SocketOutlet::new(socket.as_ref().clone());
            if !restore || outlet.queued().is_none() {
                drop(outlet);
                continue;
            }
            let note = note_of::<F::Spec>(&socket);
            match note.and_then(|note| self.with(|h| F::restore(h, note.spec))) {
                Ok(filter) => seats.push((filter, SeatOutlet::Socket(outlet))),
                // Dropped, its socket closes: its Worker attaches again.
                Err(e) => worker::console_error!("a socket's seat could not be restored: {e}"),
            }
        }
        self.count_start();
        let restored = self.with(|h| h.stream.restore(seats));
        worker::console_log!("object {} restored {restored} seats", self.path());
    }

    /// A seat's socket closed: by the Worker (`code` and `reason` say why it cut the
    /// listener, [`cut_of`]), or it failed. Its seat goes; a fresh instance learns from
    /// the socket which object it is.
    pub async fn socket_closed(
        &self,
        socket: WebSocket,
        code: u16,
        reason: &str,
    ) -> worker::Result<()> {
        if !self.open_as_noted(&socket) {
            return Ok(());
        }
        let (why, undelivered) = cut_of(code, reason);
        let closed = socket.as_ref();
        self.with(|h| {
            let this = |o: &SeatOutlet| o.socket().is_some_and(|s| s.is(closed));
            if h.stream.leave(this, why, undelivered) == 0 {
                // Not known by identity: any seat whose socket is no longer open.
                h.stream
                    .leave(|o| o.socket().is_some() && o.queued().is_none(), why, 0);
            }
            F::settle(h);
        });
        // Completes the closing handshake (a socket closed already refuses, which is fine).
        let _ = socket.close(Some(1000), Some("closed"));
        Ok(())
    }
}
