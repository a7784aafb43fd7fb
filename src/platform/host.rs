//! What a streaming Durable Object (a channel's, the hub's) needs of the runtime, written
//! once: the state it hosts once opened, shared with the work that runs after a request
//! has been answered; a flush scheduled at most once per batch window; and the
//! keep-alive alarm armed at most once.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use worker::{Delay, State};

use super::error::Error;

pub struct Host<T> {
    hosted: Rc<RefCell<Option<T>>>,
    keep_alive_armed: Cell<bool>,
    flush_scheduled: Rc<Cell<bool>>,
}

impl<T: 'static> Host<T> {
    pub fn new() -> Self {
        Host {
            hosted: Rc::new(RefCell::new(None)),
            keep_alive_armed: Cell::new(false),
            flush_scheduled: Rc::new(Cell::new(false)),
        }
    }

    /// Opens the hosted state with `open` unless it is open already.
    pub fn ensure_open(&self, open: impl FnOnce() -> Result<T, Error>) -> Result<(), Error> {
        if self.hosted.borrow().is_none() {
            let opened = open()?;
            *self.hosted.borrow_mut() = Some(opened);
        }
        Ok(())
    }

    pub fn is_open(&self) -> bool {
        self.hosted.borrow().is_some()
    }

    /// Runs `f` on the hosted state (open it first).
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut hosted = self.hosted.borrow_mut();
        f(hosted.as_mut().expect("ensure_open ran first"))
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
    pub fn schedule_flush(&self, state: &State, window_ms: u64, flush: fn(&mut T)) {
        if self.flush_scheduled.replace(true) {
            return;
        }
        let scheduled = Rc::clone(&self.flush_scheduled);
        self.later(state, Duration::from_millis(window_ms), move |h| {
            scheduled.set(false);
            flush(h);
        });
    }

    /// Arms the keep-alive alarm `interval_ms` from now, unless it is armed.
    pub async fn arm_keep_alive(&self, state: &State, interval_ms: u64) -> Result<(), Error> {
        if self.keep_alive_armed.replace(true) {
            return Ok(());
        }
        let armed = state
            .storage()
            .set_alarm(Duration::from_millis(interval_ms))
            .await;
        if armed.is_err() {
            self.keep_alive_armed.set(false);
        }
        Ok(armed?)
    }

    /// The alarm fired: the next `arm_keep_alive` arms it again.
    pub fn keep_alive_fired(&self) {
        self.keep_alive_armed.set(false);
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
