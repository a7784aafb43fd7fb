//! An object's work in time: the flush after a publish, and the one alarm (keep-alives,
//! a node's reports to its parent, the face's deadlines such as a token's expiry), armed
//! for the first of them, and not at all for an object whose seats all sleep and that
//! has nothing to report.

use worker::Response;

use super::calls::ask_node;
use super::{Face, Hosted, StreamObject};
use crate::platform::contract::{StreamCall, StreamRequest};
use crate::platform::error::Error;
use crate::platform::host::now_ms;

impl<F: Face> StreamObject<F> {
    /// After a publish: the flush, and the alarm when the object now has keep-alive
    /// work it had not (ids reserved ahead, on a root whose seats all sleep).
    pub async fn published(&self) -> Result<(), Error> {
        self.schedule_flush();
        self.arm_keep_alive().await
    }

    /// Writes what was published to the seats once the batch window has passed.
    pub fn schedule_flush(&self) {
        self.count_start();
        let window = self.with(|h| h.config.batch_window_ms);
        self.host.schedule_flush(window, settle::<F>);
    }

    /// Writes what was published to the seats now, without waiting for the scheduled
    /// flush (which takes what comes after).
    pub(super) fn flush_now(&self) {
        self.with(settle::<F>);
    }

    /// Arms the alarm for whichever comes first: the next keep-alive, when one is needed,
    /// or the face's next deadline (a token's expiry).
    pub(super) async fn arm_keep_alive(&self) -> Result<(), Error> {
        let next = self.with(|h| {
            // A node whose audience changed since it last reported reports at the next.
            let report = !h.stream.path().is_root() && h.stream.subtree_listeners() != h.reported;
            let keep_alive = h.stream.needs_keep_alive() || report;
            let keep_alive = keep_alive.then(|| now_ms() + h.config.keep_alive_ms());
            keep_alive.into_iter().chain(F::next_deadline(h)).min()
        });
        match next {
            Some(at) => self.host.arm_alarm(&self.state, at).await,
            None => Ok(()),
        }
    }

    /// Has the alarm fire at `at_ms` (or earlier), for the face's deadlines.
    pub async fn arm_deadline(&self, at_ms: u64) -> Result<(), Error> {
        self.host.arm_alarm(&self.state, at_ms).await
    }

    /// Below the root: tells the parent how many seats this subtree holds, when that
    /// changed since the last report; a node that `emptied` hands up what it counted too,
    /// for the stream's stats to keep once it is gone. Says whether the parent knows.
    async fn report_to_parent(&self, emptied: bool) -> bool {
        let (path, subtree, reported) = self.with(|h| {
            (
                h.stream.path().clone(),
                h.stream.subtree_listeners(),
                h.reported,
            )
        });
        let Some(parent) = path.parent() else {
            return true;
        };
        if subtree == reported && !emptied {
            return true;
        }
        let handed = emptied.then(|| self.with(|h| h.stream.hand_up()));
        let report = StreamRequest::Report {
            child: path,
            listeners: subtree,
            handed,
        };
        let call = StreamCall::to_node(self.target(), parent, report);
        let answered = ask_node(&call, &self.env, &[204]).await;
        self.with(|h| {
            match (&answered, &handed) {
                (Ok(_), _) => h.reported = subtree,
                // Kept here, to be handed up with the next report.
                (Err(_), Some(handed)) => h.stream.hand_back(handed),
                (Err(_), None) => {}
            }
            // What is counted here changed with the hand-up: kept so, should this sleep.
            h.keep_counts();
        });
        match answered {
            Ok(_) => {
                self.note_reported(subtree);
                true
            }
            Err(e) => {
                worker::console_error!("a node could not report to its parent: {e}");
                false
            }
        }
    }

    /// The keep-alive tick, several times per heartbeat interval while this object holds
    /// streams. Below the root it also reports the subtree's audience when it changed, and
    /// lets the stream from the parent go once no one is left.
    pub async fn alarm(&self) -> worker::Result<Response> {
        self.host.alarm_fired();
        if !self.open_from_sockets() {
            return Response::empty();
        }
        let seated = self.with(|h| {
            let now = now_ms();
            F::before_keep_alive(h, now);
            h.stream.keep_alive(now);
            F::settle(h);
            h.report_store_error();
            h.seated()
        });
        let reported = self.report_to_parent(!seated).await;
        // Seated meanwhile: it goes on. Emptied: its feed goes once the parent knows (a
        // report that failed is tried again at the next alarm).
        if !seated && !self.with(|h| h.seated()) {
            self.uplink.stop.set(true);
            if reported {
                self.drop_feed();
            }
        }
        if let Err(e) = self.arm_keep_alive().await {
            return e.to_response();
        }
        Response::empty()
    }
}

/// The flush: what was published goes to the seats; then what follows it.
fn settle<F: Face>(h: &mut Hosted<F>) {
    F::settle(h);
    h.report_store_error();
    h.keep_counts();
}
