//! A listener's stream held by the entry Worker (`HIBERNATE=1`), so that the objects
//! behind it may sleep between events.
//!
//! The Worker walks the listen (or subscribe) down the stream's tree as usual, asking for
//! [`Delivery::Socket`]: the object that seats it answers with a WebSocket it accepted
//! with the hibernation API, and writes the stream's chunks to it, the first being the
//! `retry:` field and any replay. The Worker answers the client itself and passes each
//! chunk on, applying the same rules an object applies to the streams it holds (the one
//! [`Announcer`], with this one listener): the bounded queue (`QUEUE_CAPACITY`; full,
//! the stream ends after what is queued and the client resumes from history), the
//! keep-alives on its own timer, and the cut of a client that went away or stopped
//! reading. Each cut closes the socket saying why ([`SOCKET_SLOW`], [`SOCKET_GONE`]),
//! so that the object lets the seat go and counts it.
//!
//! When the socket closes under a live listener for any other reason than the stream's
//! end (the object failed or restarted), the Worker attaches again, resuming after the
//! last id it passed on: the client's stream goes on without a reconnect and misses
//! nothing.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use worker::js_sys::{ArrayBuffer, Function, Uint8Array};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};
use worker::{Delay, Env, Headers, Response};

use super::contract::{
    cut_reason, Delivery, StreamCall, POSITION_HEADER, SOCKET_ENDED, SOCKET_GONE, SOCKET_SLOW,
};
use super::error::Error;
use super::outlet::StreamOutlet;
use crate::domain::{Announcer, Config, EventId, Fanout, Outlet, KEEP_ALIVE_COMMENT};
use crate::protocol;

/// Waits before each attempt to attach again after the object went away.
const REATTACH_BACKOFF_MS: [u64; 4] = [0, 100, 500, 2000];

/// Headers of the object's answer that belong to the socket, not to the stream.
const SOCKET_HEADERS: [&str; 5] = [
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
];

/// How listeners get their streams: held by this Worker over sockets (`HIBERNATE=1`), or
/// from their objects.
pub fn delivery(config: &Config) -> Delivery {
    match config.hibernate {
        true => Delivery::Socket,
        false => Delivery::Stream,
    }
}

/// Answers a listen or subscribe with its stream, as its call's delivery says: held here
/// ([`hold`]) or the object's own, passed through.
pub async fn open(call: StreamCall, env: &Env, config: &Config) -> Result<Response, Error> {
    match call.request.delivery() {
        Delivery::Socket => hold(call, env, config).await,
        Delivery::Stream => call.listen(env).await,
    }
}

/// Opens a listener's stream held here: `call` is its listen or subscribe, asking for a
/// socket. An answer that is not a socket (a refusal, a redirect) is returned as it came.
async fn hold(call: StreamCall, env: &Env, config: &Config) -> Result<Response, Error> {
    debug_assert_eq!(call.request.delivery(), Delivery::Socket);
    let response = call.clone().listen(env).await?;
    if response.status_code() != 101 {
        return Ok(response);
    }
    let headers = stream_headers(response.headers())?;
    let position = position_of(response.headers())?;
    let socket = response
        .websocket()
        .ok_or_else(|| Error::Contract("a 101 without its socket".into()))?;
    socket.accept()?;
    let (outlet, body) = StreamOutlet::open(config.queue_capacity, None)?;
    let closed = outlet.closed();
    let mut listener = Announcer::new(config.queue_capacity);
    listener.add(outlet, (), 0);
    let held = Rc::new(Held {
        listener: RefCell::new(listener),
        socket: RefCell::new(None),
        handlers: RefCell::new(None),
        call: RefCell::new(call),
        env: env.clone(),
        position: Cell::new(position),
        last_id: RefCell::new(None),
        last_events: RefCell::new(None),
        ended: Cell::new(false),
    });
    Held::attach(&held, socket.as_ref().clone());
    keep_alive(Rc::clone(&held), config.keep_alive_ms());
    let watched = Rc::clone(&held);
    worker::wasm_bindgen_futures::spawn_local(async move {
        if JsFuture::from(closed).await.is_err() {
            watched.vanished();
        }
    });
    Ok(Response::builder()
        .with_status(200)
        .with_headers(headers)
        .stream(body))
}

/// The object's answer's headers, for the stream's response (the face's stream headers,
/// CORS, the serving node), less the socket's own and the position, which is the
/// Worker's to know.
fn stream_headers(from: &Headers) -> Result<Headers, Error> {
    let headers = Headers::new();
    for (name, value) in from.entries() {
        let socket_only = SOCKET_HEADERS.contains(&name.to_ascii_lowercase().as_str());
        if !socket_only && !name.eq_ignore_ascii_case(POSITION_HEADER) {
            headers.set(&name, &value)?;
        }
    }
    Ok(headers)
}

/// Where the object said the stream starts: after this sequence number (a channel's
/// ids are its sequence numbers).
fn position_of(headers: &Headers) -> Result<EventId, Error> {
    let position = headers.get(POSITION_HEADER)?.unwrap_or_default();
    EventId::parse(&position).map_err(|_| Error::Contract(format!("a bad {POSITION_HEADER}")))
}

/// A socket's event handlers, kept while it is the stream's.
struct Handlers {
    socket: WebSocket,
    message: Closure<dyn FnMut(MessageEvent)>,
    close: Closure<dyn FnMut(CloseEvent)>,
}

impl Handlers {
    /// Takes them off their socket.
    fn detach(&self) {
        let off = |kind: &str, f: &Function| {
            let _ = self.socket.remove_event_listener_with_callback(kind, f);
        };
        off("message", self.message.as_ref().unchecked_ref());
        off("close", self.close.as_ref().unchecked_ref());
    }
}

struct Held {
    /// The one listener, with its bounded queue, judged as an object judges its own.
    listener: RefCell<Announcer<StreamOutlet>>,
    socket: RefCell<Option<WebSocket>>,
    handlers: RefCell<Option<Handlers>>,
    /// The listen or subscribe, to attach again with.
    call: RefCell<StreamCall>,
    env: Env,
    /// Where the object said the stream (attached again: its latest) started.
    position: Cell<EventId>,
    /// The last id passed on, as last read (none passed yet).
    last_id: RefCell<Option<String>>,
    /// The last chunk of events passed on, not yet read for its id.
    last_events: RefCell<Option<Uint8Array>>,
    ended: Cell<bool>,
}

impl Held {
    /// Makes `socket` the one the stream's chunks come from.
    fn attach(held: &Rc<Held>, socket: WebSocket) {
        socket.set_binary_type(BinaryType::Arraybuffer);
        let on_message = {
            let held = Rc::clone(held);
            Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| held.deliver(&e))
        };
        let on_close = {
            let held = Rc::clone(held);
            Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
                Held::closed(&held, e.code());
            })
        };
        let listen = |kind: &str, f: &Function| {
            let _ = socket.add_event_listener_with_callback(kind, f);
        };
        listen("message", on_message.as_ref().unchecked_ref());
        listen("close", on_close.as_ref().unchecked_ref());
        *held.socket.borrow_mut() = Some(socket.clone());
        let previous = held.handlers.replace(Some(Handlers {
            socket,
            message: on_message,
            close: on_close,
        }));
        release(previous);
    }

    /// A chunk from the object: passed on, unless the listener cannot take it.
    fn deliver(&self, event: &MessageEvent) {
        if self.ended.get() {
            return;
        }
        let chunk = match event.data().dyn_into::<ArrayBuffer>() {
            Ok(buffer) => Uint8Array::new(&buffer),
            Err(data) => match data.as_string() {
                Some(text) => StreamOutlet::chunk(&text),
                None => return,
            },
        };
        let fanout = self.listener.borrow_mut().announce(&chunk, 1);
        if fanout.slow + fanout.gone > 0 {
            // Not passed on: the object counts its events as delivered no more.
            let undelivered = protocol::Parser::parse_all(&chunk.to_vec()).len() as u64;
            self.judge(fanout, undelivered);
        } else if chunk.length() > 0 && chunk.get_index(0) != b':' {
            // A chunk of events (not a comment): where the stream has got to is its last
            // id, read only if the Worker must attach again (a chunk is read at most once,
            // and most never are).
            *self.last_events.borrow_mut() = Some(chunk);
        }
    }

    /// The last id passed on: that of the last chunk of events that carried one (none
    /// passed yet: the stream goes on from its position).
    fn resume_id(&self) -> Option<String> {
        if let Some(chunk) = self.last_events.borrow_mut().take() {
            if let Some(id) = protocol::last_id(&chunk.to_vec()) {
                *self.last_id.borrow_mut() = Some(id.to_string());
            }
        }
        self.last_id.borrow().clone()
    }

    /// Closes the socket for a listener the last write or keep-alive cut, saying why and
    /// how many events of the last chunk were not passed on.
    fn judge(&self, fanout: Fanout, undelivered: u64) {
        let code = match (fanout.slow, fanout.gone) {
            (0, 0) => return,
            (0, _) => SOCKET_GONE,
            _ => SOCKET_SLOW,
        };
        self.end();
        if let Some(socket) = self.socket.borrow().as_ref() {
            let _ = socket.close_with_code_and_reason(code, &cut_reason(undelivered));
        }
    }

    /// The client went away (the runtime cancelled the response's body): the seat goes
    /// now, not at the next write.
    fn vanished(&self) {
        if !self.ended.get() {
            let gone = Fanout {
                gone: 1,
                ..Fanout::default()
            };
            self.judge(gone, 0);
        }
    }

    /// The socket closed: at the stream's end (the listener's stream ends after what is
    /// queued), or under a live listener (attach again).
    fn closed(held: &Rc<Held>, code: u16) {
        if held.ended.get() {
            return;
        }
        if code == SOCKET_ENDED {
            held.finish();
            return;
        }
        let held = Rc::clone(held);
        worker::wasm_bindgen_futures::spawn_local(async move {
            if !Held::attach_again(&held).await {
                held.finish();
            }
        });
    }

    /// Attaches again, resuming after the last id passed on; says whether it did.
    async fn attach_again(held: &Rc<Held>) -> bool {
        let resume = held.resume_id();
        let position = held.position.get();
        held.call
            .borrow_mut()
            .request
            .resuming_after(resume.as_deref(), position);
        for wait in REATTACH_BACKOFF_MS {
            Delay::from(Duration::from_millis(wait)).await;
            if held.ended.get() || held.listener.borrow().is_empty() {
                return false;
            }
            let call = held.call.borrow().clone();
            match call.listen(&held.env).await {
                Ok(response) if response.status_code() == 101 => {
                    let position = position_of(response.headers());
                    let Some(socket) = response.websocket() else {
                        return false;
                    };
                    if socket.accept().is_err() {
                        continue;
                    }
                    if held.ended.get() || held.listener.borrow().is_empty() {
                        // The client went while this attached: the new seat goes too.
                        let _ = socket.close(Some(SOCKET_GONE), Some(cut_reason(0)));
                        return false;
                    }
                    if let Ok(position) = position {
                        held.position.set(position);
                    }
                    Held::attach(held, socket.as_ref().clone());
                    return true;
                }
                // Refused (a token that expired meanwhile, a full stream): the client
                // reconnects on its own, and is answered then.
                Ok(response) if response.status_code() < 500 => return false,
                Ok(response) => {
                    worker::console_error!("attaching again: {}", response.status_code())
                }
                Err(e) => worker::console_error!("attaching again: {e}"),
            }
        }
        false
    }

    /// Ends the listener's stream after what is queued, and lets everything go.
    fn finish(&self) {
        self.listener.borrow_mut().close_where(|_| true);
        self.end();
    }

    /// Nothing more comes or goes: the handlers are let go (after the event that called
    /// this has returned).
    fn end(&self) {
        if self.ended.replace(true) {
            return;
        }
        release(self.handlers.take());
    }

    /// The keep-alive: a comment written, a client that took nothing since the last one
    /// cut; says whether the stream goes on.
    fn keep_alive(&self) -> bool {
        if self.ended.get() {
            return false;
        }
        let chunk = StreamOutlet::chunk(&protocol::comment(KEEP_ALIVE_COMMENT));
        let fanout = self.listener.borrow_mut().keep_alive(&chunk);
        self.judge(fanout, 0);
        !self.ended.get()
    }
}

/// Drops a socket's handlers once the event that may be running one has returned.
fn release(handlers: Option<Handlers>) {
    if let Some(handlers) = handlers {
        handlers.detach();
        worker::wasm_bindgen_futures::spawn_local(async move { drop(handlers) });
    }
}

/// Writes the keep-alives every `interval_ms` for as long as the stream goes on.
fn keep_alive(held: Rc<Held>, interval_ms: u64) {
    worker::wasm_bindgen_futures::spawn_local(async move {
        loop {
            Delay::from(Duration::from_millis(interval_ms)).await;
            if !held.keep_alive() {
                break;
            }
        }
    });
}
