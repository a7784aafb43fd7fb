//! A seat over a WebSocket the object accepted with the hibernation API: each write is
//! one binary message holding a chunk of the stream, which the entry Worker passes on to
//! the listener's response. The Worker keeps the bounded queue, the keep-alives and the
//! vanished-client check (and closes the socket saying why it cut the listener), so here a
//! socket is never full, and is gone once closed.

use worker::js_sys::{Object, Uint8Array};
use worker::web_sys::WebSocket;

use crate::domain::Outlet;
use crate::platform::contract::{SOCKET_ENDED, SOCKET_RESTART};

/// `WebSocket.OPEN`.
const OPEN: u16 = 1;

pub struct SocketOutlet {
    socket: WebSocket,
}

impl SocketOutlet {
    pub fn new(socket: WebSocket) -> Self {
        SocketOutlet { socket }
    }

    /// Whether this is the seat of `socket`.
    pub fn is(&self, socket: &WebSocket) -> bool {
        Object::is(&self.socket, socket)
    }

    /// Closes the socket for the Worker to attach again, resuming where it was.
    pub fn restart(&self) {
        let _ = self
            .socket
            .close_with_code_and_reason(SOCKET_RESTART, "attach again");
    }
}

impl Outlet for SocketOutlet {
    type Chunk = Uint8Array;

    fn chunk(text: &str) -> Uint8Array {
        Uint8Array::from(text.as_bytes())
    }

    fn queued(&self) -> Option<usize> {
        (self.socket.ready_state() == OPEN).then_some(0)
    }

    fn write(&mut self, chunk: &Uint8Array) {
        // A chunk is never changed once made, so the runtime may send it when it likes.
        if self.socket.send_with_array_buffer_view(chunk).is_err() {
            worker::console_error!("a seat's socket refused a write");
        }
    }

    fn close(&mut self) {
        let _ = self
            .socket
            .close_with_code_and_reason(SOCKET_ENDED, "the stream ended");
    }

    fn abort(&mut self) {
        self.close();
    }
}

impl Drop for SocketOutlet {
    /// A seat that goes (or never was made: a join refused after its socket was
    /// accepted) leaves no socket open behind it: the Worker attaches again.
    fn drop(&mut self) {
        if self.socket.ready_state() == OPEN {
            self.restart();
        }
    }
}
