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
//!
//! Seats on sockets ([`super::outlet::SocketOutlet`]) outlive an instance by design: an
//! object that slept starts again with them, and goes on where it was. One whose instance
//! failed may have stored events it never wrote to them, so it has them attach again
//! instead ([`OpenStreams::lost_state`]). The two are told apart by which memory knows the
//! object: the JavaScript global knows every object this isolate ran, the wasm memory only
//! those this wasm instance ran, and a reset empties only the second. Both remember the
//! [`REMEMBERED`] objects that started last: an isolate may host many objects over its
//! life, and an object pushed out by that many newer starts is taken to have slept.

use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{global, Map, Reflect, Set};
use worker::web_sys::{WebSocket, WritableStreamDefaultWriter};
use worker::State;

/// The property of `globalThis` that holds the map: object id -> `Set` of writers.
const GLOBAL_KEY: &str = "__sseEdgeOpenStreams";
/// The property of `globalThis` that holds the ids of the objects this isolate ran.
const RAN_KEY: &str = "__sseEdgeObjectsRan";

/// How many objects' starts each memory remembers, the latest.
const REMEMBERED: usize = 4096;

thread_local! {
    /// The ids of the objects this wasm instance ran, the latest last.
    static RAN_HERE: std::cell::RefCell<std::collections::VecDeque<String>> =
        const { std::cell::RefCell::new(std::collections::VecDeque::new()) };
}

/// One object's entry in the map (present while it has open streams).
pub struct OpenStreams {
    id: JsValue,
    writers: Set,
    lost_state: bool,
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
            left.for_each(&mut |held, _, _| {
                close(&held);
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
        let name = state.id().to_string();
        let ran = global_set();
        let ran_here = RAN_HERE.with(|r| remember(&mut r.borrow_mut(), name));
        let lost_state = ran.has(&id) && !ran_here;
        // Latest last (a `Set` keeps the order values were added in).
        ran.delete(&id);
        ran.add(&id);
        if ran.size() as usize > REMEMBERED {
            if let Some(oldest) = ran.values().next().ok().map(|v| v.value()) {
                ran.delete(&oldest);
            }
        }
        OpenStreams {
            id,
            writers: Set::new(&JsValue::UNDEFINED),
            lost_state,
        }
    }

    /// Whether an earlier instance of this object failed (its wasm memory was reset)
    /// rather than slept: what it wrote to its seats is not known.
    pub fn lost_state(&self) -> bool {
        self.lost_state
    }

    pub fn add(&self, writer: &WritableStreamDefaultWriter) {
        self.hold(writer);
    }

    /// Forgets a stream; an object with none left leaves the map, so the map holds only
    /// objects that feed streams.
    pub fn remove(&self, writer: &WritableStreamDefaultWriter) {
        self.let_go(writer);
    }

    /// Knows a socket this object opened to feed a child (not one it accepted: those the
    /// runtime keeps), so that a lost state closes it and the child asks again.
    pub fn add_socket(&self, socket: &WebSocket) {
        self.hold(socket);
    }

    /// Closes the sockets known here, for their children to ask again.
    pub fn close_sockets(&self) {
        let mut sockets = Vec::new();
        self.writers.for_each(&mut |held, _, _| {
            if let Some(socket) = held.dyn_ref::<WebSocket>() {
                sockets.push(socket.clone());
            }
        });
        for socket in sockets {
            close(&socket);
            self.let_go(&socket);
        }
    }

    /// Forgets a socket that closed.
    pub fn remove_socket(&self, socket: &WebSocket) {
        self.let_go(socket);
    }

    fn hold(&self, held: &JsValue) {
        if self.writers.size() == 0 {
            global_map().set(&self.id, &self.writers);
        }
        self.writers.add(held);
    }

    fn let_go(&self, held: &JsValue) {
        self.writers.delete(held);
        if self.writers.size() == 0 {
            global_map().delete(&self.id);
        }
    }
}

/// Closes what an object held: a child's socket (the child asks again) or a stream's
/// writer (its client reconnects and resumes); only those are ever held.
fn close(held: &JsValue) {
    match held.dyn_ref::<WebSocket>() {
        Some(socket) => super::outlet::restart(socket),
        None => {
            let writer: &WritableStreamDefaultWriter = held.unchecked_ref();
            // Many of them errored already (their client left meanwhile).
            super::outlet::ignore_rejection(writer.close());
        }
    }
}

/// Puts `name` last among the `ran` (forgetting the oldest past [`REMEMBERED`]); says
/// whether it was there.
fn remember(ran: &mut std::collections::VecDeque<String>, name: String) -> bool {
    let before = ran.len();
    ran.retain(|n| *n != name);
    let was = ran.len() < before;
    ran.push_back(name);
    if ran.len() > REMEMBERED {
        ran.pop_front();
    }
    was
}

/// `globalThis[GLOBAL_KEY]`, made on first use.
fn global_map() -> Map {
    global_value(GLOBAL_KEY, Map::new)
}

/// `globalThis[RAN_KEY]`, made on first use.
fn global_set() -> Set {
    global_value(RAN_KEY, || Set::new(&JsValue::UNDEFINED))
}

fn global_value<T: JsCast + AsRef<JsValue>>(name: &str, make: impl FnOnce() -> T) -> T {
    let global = global();
    let key = JsValue::from_str(name);
    match Reflect::get(&global, &key)
        .ok()
        .and_then(|v| v.dyn_into::<T>().ok())
    {
        Some(value) => value,
        None => {
            let value = make();
            let _ = Reflect::set(&global, &key, value.as_ref());
            value
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_starts_are_remembered_and_the_oldest_forgotten() {
        let mut ran = std::collections::VecDeque::new();
        assert!(!remember(&mut ran, "a".into()), "a first start");
        assert!(remember(&mut ran, "a".into()), "a start again");
        for n in 0..REMEMBERED - 1 {
            remember(&mut ran, n.to_string());
        }
        assert_eq!(ran.len(), REMEMBERED);
        assert!(
            remember(&mut ran, "a".into()),
            "still there, and now the latest"
        );
        remember(&mut ran, "one more".into());
        assert_eq!(ran.len(), REMEMBERED);
        assert!(!ran.contains(&"0".to_string()), "the oldest went");
        assert!(
            ran.contains(&"a".to_string()),
            "a start again made it the latest"
        );
    }
}
