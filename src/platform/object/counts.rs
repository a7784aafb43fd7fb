//! What an object counts across its instances ([`object_counts`]): each start that does
//! work, and, when the object may sleep, what it published and delivered, so that the
//! instance that wakes goes on from there.

use worker::Response;

use super::calls::child_answer;
use super::{Face, Hosted, StreamObject};
use crate::domain::StreamStats;
use crate::platform::contract::{StreamCall, StreamRequest};
use crate::platform::error::Error;
use crate::platform::host::now_ms;
use crate::platform::{http, object_counts};

impl<F: Face> Hosted<F> {
    /// When this object may sleep (`HIBERNATE=1`, every seat on a socket, nothing to keep
    /// alive), keeps what it counted, so that the instance that wakes goes on from there:
    /// one row written per flush or departure that changed a count.
    pub fn keep_counts(&mut self) {
        if !self.config.hibernate || !self.start_counted || self.stream.needs_keep_alive() {
            return;
        }
        if self.storage_dropped {
            return;
        }
        let counted = self.stream.counted();
        if self.kept == Some(counted) {
            return;
        }
        match object_counts::keep(&self.sql, &counted) {
            Ok(()) => self.kept = Some(counted),
            Err(e) => worker::console_error!("an object's counts were not kept: {e}"),
        }
    }
}

impl<F: Face> Hosted<F> {
    /// Takes frames relayed from the parent, and writes them on. A node whose stream
    /// ended with them keeps nothing in storage from then on: its counts row goes (what
    /// it counted is still handed up from memory at its next report).
    pub fn relayed(&mut self, frames: &[crate::protocol::RawFrame]) {
        self.stream.ingest(frames, now_ms());
        F::settle(self);
        self.drop_storage_if_ended();
        self.keep_counts();
    }

    /// Below the root, once the stream has ended: drops what this object stored.
    pub fn drop_storage_if_ended(&mut self) {
        if self.storage_dropped || self.stream.path().is_root() || !self.stream.has_ended() {
            return;
        }
        self.storage_dropped = true;
        self.start_counted = true;
        if let Err(e) = object_counts::forget(&self.sql) {
            worker::console_error!("an ended node's counts were not dropped: {e}");
        }
    }
}

impl<F: Face> StreamObject<F> {
    /// Counts this start of the object, once it does work (a seat, a publish, seats to
    /// restore): an object of a stream never used, opened to answer a read (its stats),
    /// writes nothing.
    pub fn count_start(&self) {
        if self.with(|h| h.start_counted) {
            return;
        }
        let counted = object_counts::count_start(&self.state.storage().sql());
        self.with(|h| {
            h.start_counted = true; // tried once: a failure is not tried again per call
            match counted {
                Ok(starts) => h.starts = starts,
                Err(e) => worker::console_error!("an object's start was not counted: {e}"),
            }
        });
    }
}

/// The stats, this object's and its subtree's.
impl<F: Face> StreamObject<F> {
    /// This object's counters plus its children's subtrees (asked all at once).
    pub(super) async fn stats(&self) -> Result<Response, Error> {
        let mut stats = self.with(|h| {
            let mut stats = h.stream.stats(now_ms());
            stats.starts = h.starts;
            h.report_store_error();
            stats
        });
        for below in self.gather(StreamRequest::Stats).await {
            match StreamStats::from_json(&below) {
                Some(below) => stats.absorb(&below),
                None => worker::console_error!("a node's stats could not be read"),
            }
        }
        let target = self.target();
        http::json(&match self.path().is_root() {
            true => F::stats_json(&stats, &target),
            false => stats.to_json(target.name()),
        })
    }

    /// What each child answers `request` with, as JSON, asked all at once; a child that
    /// fails or is late is left out (and logged).
    pub async fn gather(&self, request: StreamRequest) -> Vec<serde_json::Value> {
        let (target, children) = self.with(|h| (h.target.clone(), h.stream.relay_children()));
        let asks = children.into_iter().map(|child| {
            let call = StreamCall::to_node(target.clone(), child, request.clone());
            async move { child_answer(call, &self.env).await }
        });
        let mut answers = Vec::new();
        for answer in futures_util::future::join_all(asks).await {
            match answer {
                Ok(answer) => answers.push(answer),
                Err(e) => worker::console_error!("a node did not answer: {e}"),
            }
        }
        answers
    }
}
