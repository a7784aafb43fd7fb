//! What a streaming Durable Object (a channel's, the hub's) needs of the runtime, written
//! once: the state it hosts once opened, shared with the work that runs after a request
//! has been answered; a flush scheduled at most once per batch window; and the one
//! alarm (keep-alives, deadlines such as a token's expiry), armed for the earliest time
//! anything needs it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsCast;
use worker::js_sys::Function;
use worker::{Delay, State};

use super::error::Error;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(callback: &Function, ms: f64);
}

/// How long a full object keeps writing keep-alives to its listeners (one per
/// `PROBE_POLL`), for the runtime to report clients that went away, before it refuses a
/// newcomer.
const PROBE_WAIT: Duration = Duration::from_millis(1000);
const PROBE_POLL: Duration = Duration::from_millis(50);

/// The runtime's clock, in milliseconds: what both objects stamp events and timers with.
pub fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

/// Waits until `done` says so, looking every `poll`, for at most `max`; says whether it
/// did.
pub async fn wait_until(done: impl Fn() -> bool, max: Duration, poll: Duration) -> bool {
    let started = now_ms();
    while !done() {
        if now_ms() - started > max.as_millis() as u64 {
            return false;
        }
        Delay::from(poll).await;
    }
    true
}

pub struct Host<T> {
    hosted: Rc<RefCell<Option<T>>>,
    /// When the last probe for gone clients was written.
    last_probe_ms: Cell<u64>,
    /// When the alarm is armed for; `Some(None)`: not armed; `None`: not known yet (a
    /// fresh instance asks storage: an earlier one may have armed it).
    alarm_at: Cell<Option<Option<u64>>>,
    flush_scheduled: Rc<Cell<bool>>,
    /// The flush as a JavaScript callback, made once: scheduling it is then one call
    /// into JavaScript (a future and a promise per publish cost several).
    flush_callback: RefCell<Option<Closure<dyn FnMut()>>>,
}

impl<T: 'static> Host<T> {
    pub fn new() -> Self {
        Host {
            hosted: Rc::new(RefCell::new(None)),
            last_probe_ms: Cell::new(0),
            alarm_at: Cell::new(None),
            flush_scheduled: Rc::new(Cell::new(false)),
            flush_callback: RefCell::new(None),
        }
    }

    /// Opens the hosted state with `open` unless it is open already; says whether it
    /// opened it now.
    pub fn ensure_open(&self, open: impl FnOnce() -> Result<T, Error>) -> Result<bool, Error> {
        if self.hosted.borrow().is_some() {
            return Ok(false);
        }
        let opened = open()?;
        *self.hosted.borrow_mut() = Some(opened);
        Ok(true)
    }

    /// Drops the hosted state: the next call opens it again.
    pub fn forget(&self) {
        let gone = self.hosted.borrow_mut().take();
        drop(gone);
    }

    pub fn is_open(&self) -> bool {
        self.hosted.borrow().is_some()
    }

    /// Runs `f` on the hosted state (open it first).
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut hosted = self.hosted.borrow_mut();
        f(hosted.as_mut().expect("ensure_open ran first"))
    }

    /// A full object may be full of clients that went away without a word: writing to
    /// them makes the runtime notice (locally, by the second write, within ~100 ms). While
    /// `has_room` says no, for up to a second, this writes `probe` (keep-alives) every
    /// 50 ms; newcomers waiting together share the probes.
    pub async fn probe_while_full(&self, has_room: fn(&mut T) -> bool, probe: fn(&mut T)) {
        let started = now_ms();
        while !self.with(has_room) && now_ms() - started < PROBE_WAIT.as_millis() as u64 {
            if now_ms() - self.last_probe_ms.get() >= PROBE_POLL.as_millis() as u64 {
                self.last_probe_ms.set(now_ms());
                self.with(probe);
            }
            Delay::from(PROBE_POLL).await;
        }
    }

    /// A handle on the hosted state for work that outlives the request that started it.
    pub fn shared(&self) -> Shared<T> {
        Shared(Rc::clone(&self.hosted))
    }

    /// Runs `f` on the hosted state after `delay`, once the request that asked has long
    /// been answered.
    pub fn later(&self, state: &State, delay: Duration, f: impl FnOnce(&mut T) + 'static) {
        let hosted = Rc::clone(&self.hosted);
        state.wait_until(async move {
            Delay::from(delay).await;
            if let Some(h) = hosted.borrow_mut().as_mut() {
                f(h);
            }
        });
    }

    /// Runs `flush` once `window_ms` has passed (with a window of 0, once the object is
    /// idle: everything published meanwhile goes together); a flush already scheduled
    /// takes this one's work too.
    ///
    /// A timer keeps no object alive, and needs not: an object with listeners stays, and
    /// one without has nobody to flush to (what it published is stored already).
    pub fn schedule_flush(&self, window_ms: u64, flush: fn(&mut T)) {
        if self.flush_scheduled.replace(true) {
            return;
        }
        let mut callback = self.flush_callback.borrow_mut();
        let callback = callback.get_or_insert_with(|| {
            let hosted = Rc::clone(&self.hosted);
            let scheduled = Rc::clone(&self.flush_scheduled);
            Closure::new(move || {
                scheduled.set(false);
                if let Some(h) = hosted.borrow_mut().as_mut() {
                    flush(h);
                }
            })
        });
        set_timeout(callback.as_ref().unchecked_ref(), window_ms as f64);
    }

    /// Arms the alarm for `at_ms`, unless it is armed for then or earlier already.
    pub async fn arm_alarm(&self, state: &State, at_ms: u64) -> Result<(), Error> {
        let armed = match self.alarm_at.get() {
            Some(armed) => armed,
            None => {
                let stored = state.storage().get_alarm().await?;
                stored.map(|at| at.max(0) as u64)
            }
        };
        if armed.is_some_and(|armed| armed <= at_ms) {
            self.alarm_at.set(Some(armed));
            return Ok(());
        }
        self.alarm_at.set(Some(Some(at_ms)));
        let set = state
            .storage()
            .set_alarm(at_ms as i64 - now_ms() as i64)
            .await;
        if set.is_err() {
            self.alarm_at.set(None);
        }
        Ok(set?)
    }

    /// The alarm fired: it is not armed until the next `arm_alarm`.
    pub fn alarm_fired(&self) {
        self.alarm_at.set(Some(None));
    }
}

/// The hosted state, for work that runs between requests.
pub struct Shared<T>(Rc<RefCell<Option<T>>>);

impl<T> Shared<T> {
    /// Runs `f` on the hosted state, if it is open.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        self.0.borrow_mut().as_mut().map(f)
    }
}
