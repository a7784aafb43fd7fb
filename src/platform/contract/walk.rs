//! The Worker's walk down a stream's tree (a channel's, the hub's): a listen or a
//! subscribe goes to the root, or to the region head it was last sent to, and on down as
//! each node places it, until one seats it.

use std::cell::RefCell;
use std::collections::HashMap;

use worker::Env;

use super::{StreamCall, StreamRequest, Target, NODE_HEADER, PLACED_STATUS};
use crate::domain::{NodePath, Region};
use crate::platform::error::Error;
use worker::Response;

/// The most nodes a listen walks through before it is seated (a tree is never deeper).
const MAX_HOPS: usize = crate::domain::tree::MAX_DEPTH + 1;

/// How long a Worker goes straight to the region head the root sent it to.
pub const HEAD_MEMORY_MS: f64 = 10_000.0;
/// Most streams and regions whose heads a Worker remembers (the oldest go first).
const HEADS_REMEMBERED: usize = 1024;

type HeadKey = (Target, Region);

thread_local! {
    /// Region heads the root named, per stream and region, with when that was.
    static HEADS: RefCell<HashMap<HeadKey, (NodePath, f64)>> = RefCell::new(HashMap::new());
}

fn known_head(target: &Target, region: Region) -> Option<NodePath> {
    let now = worker::Date::now().as_millis() as f64;
    let key = (target.clone(), region);
    HEADS.with(|heads| {
        let mut heads = heads.borrow_mut();
        match heads.get(&key) {
            Some((head, at)) if now - at < HEAD_MEMORY_MS => Some(head.clone()),
            Some(_) => {
                heads.remove(&key);
                None
            }
            None => None,
        }
    })
}

fn remember_head(target: &Target, region: Region, head: &NodePath) {
    let now = worker::Date::now().as_millis() as f64;
    HEADS.with(|heads| {
        let mut heads = heads.borrow_mut();
        if heads.len() >= HEADS_REMEMBERED {
            let oldest = heads
                .iter()
                .min_by(|a, b| (a.1).1.total_cmp(&(b.1).1))
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                heads.remove(&oldest);
            }
        }
        let key = (target.clone(), region);
        heads.insert(key, (head.clone(), now));
    });
}

impl StreamCall {
    /// Sends a listen or a subscribe to the stream's root and on down the tree, as each
    /// node places it, until one seats it: its stream comes back untouched.
    ///
    /// A Worker that was sent to a region's head remembers it for [`HEAD_MEMORY_MS`] and
    /// starts there, so that the root of a big stream is not in every walk (a deploy's
    /// reconnects would all pass through its one thread).
    pub async fn listen(self, env: &Env) -> Result<Response, Error> {
        let mut call = self;
        let region = match &call.request {
            StreamRequest::Listen { region, .. } | StreamRequest::Subscribe { region, .. } => {
                *region
            }
            _ => {
                return Err(Error::Contract(
                    "a walk is for a listen or a subscribe".into(),
                ))
            }
        };
        if let Some(head) = known_head(&call.target, region) {
            call.node = head;
        }
        for _ in 0..MAX_HOPS {
            let response = call.send(env).await?;
            if response.status_code() != PLACED_STATUS {
                return Ok(response);
            }
            let next = response
                .headers()
                .get(NODE_HEADER)?
                .and_then(|n| NodePath::parse(&n).ok())
                .ok_or_else(|| Error::Contract("a placement without its node".into()))?;
            if call.node.is_root() {
                remember_head(&call.target, region, &next);
            }
            call.node = next;
        }
        Err(Error::TreeBusy(
            "the tree kept placing the seat further down",
        ))
    }
}
