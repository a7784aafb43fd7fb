//! A seat's end of its stream, as the runtime provides it: a stream the object writes
//! into a response body ([`StreamOutlet`]), or a socket the object accepted with the
//! hibernation API, whose far end the entry Worker holds ([`SocketOutlet`]). Both write
//! the same chunks.

mod socket;
mod stream;

use std::cell::RefCell;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsValue;
use worker::js_sys::{Promise, Uint8Array};

use crate::domain::Outlet;
pub use socket::{mark_closed, restart, SocketOutlet, OPEN};
pub use stream::StreamOutlet;

/// What an object's seat writes to.
pub enum SeatOutlet {
    Stream(StreamOutlet),
    Socket(SocketOutlet),
}

impl SeatOutlet {
    /// The socket, for a seat that has one.
    pub fn socket(&self) -> Option<&SocketOutlet> {
        match self {
            SeatOutlet::Socket(socket) => Some(socket),
            SeatOutlet::Stream(_) => None,
        }
    }
}

impl Outlet for SeatOutlet {
    type Chunk = Uint8Array;

    fn chunk(text: &str) -> Uint8Array {
        StreamOutlet::chunk(text)
    }

    fn queued(&self) -> Option<usize> {
        match self {
            SeatOutlet::Stream(o) => o.queued(),
            SeatOutlet::Socket(o) => o.queued(),
        }
    }

    fn write(&mut self, chunk: &Uint8Array) {
        match self {
            SeatOutlet::Stream(o) => o.write(chunk),
            SeatOutlet::Socket(o) => o.write(chunk),
        }
    }

    fn close(&mut self) {
        match self {
            SeatOutlet::Stream(o) => o.close(),
            SeatOutlet::Socket(o) => o.close(),
        }
    }

    fn abort(&mut self) {
        match self {
            SeatOutlet::Stream(o) => o.abort(),
            SeatOutlet::Socket(o) => o.abort(),
        }
    }

    fn sleeps(&self) -> bool {
        matches!(self, SeatOutlet::Socket(_))
    }
}

thread_local! {
    /// One shared handler for rejected writes: a write to a stream whose client has gone
    /// rejects, and that is expected (the next announce or heartbeat removes it).
    static IGNORE_REJECTION: RefCell<Closure<dyn FnMut(JsValue)>> = RefCell::new(Closure::new(|_| {}));
}

pub(super) fn ignore_rejection(promise: Promise) {
    IGNORE_REJECTION.with(|handler| {
        let _ = promise.catch(&handler.borrow());
    });
}
