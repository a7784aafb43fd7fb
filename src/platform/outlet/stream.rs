//! A listener's stream in the Workers runtime: a standard `TransformStream` whose readable
//! side is the response body (piped to the client natively by the runtime) and whose
//! writer the object keeps (or, for a stream the entry Worker holds, the Worker). The
//! writable side's queue is the listener's bounded queue: its high-water mark is the queue
//! capacity and `desiredSize` says how full it is.

use std::rc::Rc;

use wasm_bindgen::JsValue;
use worker::js_sys::{Object, Uint8Array};
use worker::web_sys::{
    QueuingStrategy, ReadableStream, TransformStream, WritableStreamDefaultWriter,
};

use super::ignore_rejection;
use crate::domain::Outlet;
use crate::platform::open_streams::OpenStreams;

pub struct StreamOutlet {
    writer: WritableStreamDefaultWriter,
    capacity: f64,
    /// The object's open streams, which know this one until it is dropped.
    open: Option<Rc<OpenStreams>>,
}

impl StreamOutlet {
    /// A new stream, known to `open` (an object's open streams) while it lives: the outlet
    /// to write to and the body to respond with.
    pub fn open(
        capacity: usize,
        open: Option<&Rc<OpenStreams>>,
    ) -> Result<(StreamOutlet, ReadableStream), JsValue> {
        let writable_strategy = QueuingStrategy::new();
        writable_strategy.set_high_water_mark(capacity as f64);
        // Nothing waits on the readable side beyond what the runtime is sending, so a
        // chunk the client does not take stays in the writable queue, where it is counted.
        let readable_strategy = QueuingStrategy::new();
        readable_strategy.set_high_water_mark(0.0);
        let stream =
            TransformStream::new_with_transformer_and_writable_strategy_and_readable_strategy(
                &Object::new(),
                &writable_strategy,
                &readable_strategy,
            )?;
        let writer = stream.writable().get_writer()?;
        if let Some(open) = open {
            open.add(&writer);
        }
        Ok((
            StreamOutlet {
                writer,
                capacity: capacity as f64,
                open: open.map(Rc::clone),
            },
            stream.readable(),
        ))
    }
}

impl StreamOutlet {
    /// Settles when the stream is done: resolved once closed, rejected once its client
    /// went away (the runtime cancels the body it was reading).
    pub fn closed(&self) -> worker::js_sys::Promise {
        self.writer.closed()
    }
}

impl Drop for StreamOutlet {
    fn drop(&mut self) {
        if let Some(open) = &self.open {
            open.remove(&self.writer);
        }
    }
}

impl Outlet for StreamOutlet {
    type Chunk = Uint8Array;

    fn chunk(text: &str) -> Uint8Array {
        Uint8Array::from(text.as_bytes())
    }

    fn queued(&self) -> Option<usize> {
        match self.writer.desired_size() {
            Ok(Some(desired)) => Some((self.capacity - desired).max(0.0) as usize),
            // Errored (the client went away and the runtime said so), or released.
            _ => None,
        }
    }

    fn write(&mut self, chunk: &Uint8Array) {
        ignore_rejection(self.writer.write_with_chunk(chunk));
    }

    fn close(&mut self) {
        ignore_rejection(self.writer.close());
    }

    fn abort(&mut self) {
        ignore_rejection(self.writer.abort());
    }
}
