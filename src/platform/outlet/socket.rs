//! A seat over a WebSocket the object accepted with the hibernation API: each write is
//! one binary message holding a chunk of the stream, which the entry Worker passes on to
//! the listener's response. The Worker keeps the bounded queue, the keep-alives and the
//! vanished-client check (and closes the socket saying why it cut the listener), so here a
//! socket is never full, and is gone once closed.

use std::rc::Rc;

use worker::js_sys::Uint8Array;
use worker::web_sys::WebSocket;

use crate::domain::Outlet;
use crate::platform::contract::{SOCKET_ENDED, SOCKET_RESTART};
use crate::platform::open_streams::OpenStreams;

/// `WebSocket.OPEN`.
pub const OPEN: u16 = 1;

/// A seat's socket. Dropping it does nothing to the socket: an object's state is also
/// dropped when the runtime evicts a sleeping object, and its sockets must stay open
/// then. Whoever lets a seat go for good closes its socket first ([`restart`]).
pub struct SocketOutlet {
    socket: WebSocket,
    /// The seat's id, as its socket's note says.
    seat: u64,
    /// Whether the socket takes writes: known when the seat is made, and lost at a write
    /// that fails or a close (asking the runtime at every write would cost a call each).
    open: bool,
    /// Whether to ask the runtime at every write after all: a socket this object opened
    /// itself (to feed a child) has no close handler here to tell it.
    asks: bool,
    /// Who knows the socket outside the wasm memory (one this object opened), until the
    /// seat goes.
    known: Option<Rc<OpenStreams>>,
}

impl SocketOutlet {
    /// A seat's socket, accepted with the hibernation API (its close comes to the object).
    pub fn new(socket: WebSocket, seat: u64) -> Self {
        let open = socket.ready_state() == OPEN;
        SocketOutlet {
            socket,
            seat,
            open,
            asks: false,
            known: None,
        }
    }

    /// A socket this object opened to a child it feeds, known to `known` (the object's
    /// open streams) while its seat lives: found gone at the next write or sweep once it
    /// closed.
    pub fn opened_here(socket: WebSocket, seat: u64, known: &Rc<OpenStreams>) -> Self {
        known.add_socket(&socket);
        let mut outlet = SocketOutlet::new(socket, seat);
        outlet.asks = true;
        outlet.known = Some(Rc::clone(known));
        outlet
    }

    /// Whether this is the seat of that id.
    pub fn is(&self, seat: u64) -> bool {
        self.seat == seat
    }
}

impl Drop for SocketOutlet {
    /// Forgets the socket it opened; never closes it (see above).
    fn drop(&mut self) {
        if let Some(known) = &self.known {
            known.remove_socket(&self.socket);
        }
    }
}

/// The field of an accepted socket's note that says its seat is over: closed here, its
/// close on its way. A fresh instance that the close (or anything else) wakes then finds
/// no seat to restore on it.
pub const CLOSED_FIELD: &str = "closed";

/// Marks an accepted socket's note: its seat is over.
pub fn mark_closed(socket: &WebSocket) {
    let socket = worker::WebSocket::from(socket.clone());
    if let Ok(Some(mut note)) = socket.deserialize_attachment::<serde_json::Value>() {
        note[CLOSED_FIELD] = serde_json::Value::Bool(true);
        if let Err(e) = socket.serialize_attachment(note) {
            worker::console_error!("a closed seat's note was not marked: {e}");
        }
    }
}

/// Closes `socket` for the Worker to attach again (a socket whose seat this object does
/// not go on with).
pub fn restart(socket: &WebSocket) {
    let _ = socket.close_with_code_and_reason(SOCKET_RESTART, "attach again");
}

impl Outlet for SocketOutlet {
    type Chunk = Uint8Array;

    fn chunk(text: &str) -> Uint8Array {
        Uint8Array::from(text.as_bytes())
    }

    fn queued(&self) -> Option<usize> {
        let open = self.open && (!self.asks || self.socket.ready_state() == OPEN);
        open.then_some(0)
    }

    fn write(&mut self, chunk: &Uint8Array) {
        // A chunk is never changed once made, so the runtime may send it when it likes.
        if self.socket.send_with_array_buffer_view(chunk).is_err() {
            // Closed under the seat: its close, on its way, lets the seat go.
            self.open = false;
        }
    }

    fn close(&mut self) {
        self.open = false;
        if self.known.is_none() {
            mark_closed(&self.socket);
        }
        let _ = self
            .socket
            .close_with_code_and_reason(SOCKET_ENDED, "the stream ended");
    }

    fn abort(&mut self) {
        self.close();
    }
}
