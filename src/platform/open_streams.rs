//! Every stream an object is feeding, also known outside the wasm memory, so that a lost
//! state never leaves a stream open and silent.
//!
//! When the wasm instance fails (a panic, running out of memory), the runtime's shim resets
//! it: every object's Rust state is gone, and with it the writers of the streams it was
//! feeding, but the streams themselves stay open, kept alive by the runtime, and an
//! `EventSource` on one of them never hears again and never reconnects. So each writer is
//! also kept in a JavaScript `Map` on `globalThis`, keyed by the object's id, which the
//! reset does not touch. An object that starts finds there the streams an earlier instance
//! of itself left, and closes them: their clients reconnect and resume from history. The
//! next call into the object after a reset (at the latest its keep-alive alarm) starts it.

use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{global, Map, Reflect, Set};
use worker::web_sys::WritableStreamDefaultWriter;
use worker::State;

/// The property of `globalThis` that holds the map: object id -> `Set` of writers.
const GLOBAL_KEY: &str = "__sseEdgeOpenStreams";

/// One object's entry in the map (present while it has open streams).
pub struct OpenStreams {
    id: JsValue,
    writers: Set,
}

impl OpenStreams {
    /// The open streams of the object hosted by `state`, after closing any that an earlier
    /// instance of it left behind.
    pub fn claim(state: &State) -> OpenStreams {
        let id = JsValue::from(state.id().to_string());
        let map = global_map();
        let left = map.get(&id);
        if let Some(left) = left.dyn_ref::<Set>() {
            let mut closed = 0;
            left.for_each(&mut |writer, _, _| {
                // Only writers are ever put in the set.
                let writer: &WritableStreamDefaultWriter = writer.unchecked_ref();
                // Many of them errored already (their client left meanwhile).
                super::outlet::ignore_rejection(writer.close());
                closed += 1;
            });
            if closed > 0 {
                worker::console_error!(
                    "object {} lost its state: closed the {closed} streams it was feeding",
                    state.id().to_string()
                );
            }
        }
        map.delete(&id);
        OpenStreams {
            id,
            writers: Set::new(&JsValue::UNDEFINED),
        }
    }

    pub fn add(&self, writer: &WritableStreamDefaultWriter) {
        if self.writers.size() == 0 {
            global_map().set(&self.id, &self.writers);
        }
        self.writers.add(writer);
    }

    /// Forgets a stream; an object with none left leaves the map, so the map holds only
    /// objects that feed streams.
    pub fn remove(&self, writer: &WritableStreamDefaultWriter) {
        self.writers.delete(writer);
        if self.writers.size() == 0 {
            global_map().delete(&self.id);
        }
    }
}

/// `globalThis[GLOBAL_KEY]`, made on first use.
fn global_map() -> Map {
    let global = global();
    let key = JsValue::from_str(GLOBAL_KEY);
    match Reflect::get(&global, &key)
        .ok()
        .and_then(|v| v.dyn_into::<Map>().ok())
    {
        Some(map) => map,
        None => {
            let map = Map::new();
            let _ = Reflect::set(&global, &key, &map);
            map
        }
    }
}
