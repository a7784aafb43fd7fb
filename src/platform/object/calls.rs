//! Calls to the other objects of a tree, and the one check of their answers.

use std::time::Duration;

use worker::{Delay, Env, Response};

use super::POSITION_HEADER;
use crate::domain::EventId;
use crate::platform::contract::StreamCall;
use crate::platform::error::Error;

/// How long a node waits for a child's part of a gathered answer (stats, subscribers);
/// a child that does not answer by then is left out of it (and its failure logged).
const CHILD_WAIT: Duration = Duration::from_millis(3000);

/// Sends a call to another node of the tree, and takes its answer when it has a status
/// the call expects (`expected`: 200 for a stream, a replay or stats, 204 for a report,
/// and 404 too for a key the root may not keep). A node that cannot be reached, or is
/// busy, is one to try again soon: whoever this node answers gets a 503 with
/// `Retry-After`. A node whose stream has ended says so (409).
pub(super) async fn ask_node(
    call: &StreamCall,
    env: &Env,
    expected: &[u16],
) -> Result<Response, Error> {
    let response = match call.send(env).await {
        Ok(response) => response,
        Err(e) => {
            worker::console_error!("node {} could not be reached: {e}", call.node);
            return Err(Error::TreeBusy("a node above cannot be reached"));
        }
    };
    match response.status_code() {
        status if expected.contains(&status) => Ok(response),
        503 => Err(Error::TreeBusy("a node above is busy")),
        // Ended, or ended and deleted: either way this node's stream is over.
        409 | 410 => Err(Error::Ended(crate::domain::StreamEnded)),
        status => Err(Error::Contract(format!("a node above answered {status}"))),
    }
}

pub(super) fn position_of(response: &Response) -> Result<EventId, Error> {
    response
        .headers()
        .get(POSITION_HEADER)?
        .and_then(|p| EventId::parse(&p).ok())
        .ok_or_else(|| Error::Contract("a stream without its position".into()))
}

pub(super) async fn child_answer(call: StreamCall, env: &Env) -> Result<serde_json::Value, Error> {
    let ask = async {
        let mut response = ask_node(&call, env, &[200]).await?;
        Ok::<_, Error>(response.json().await?)
    };
    let wait = Delay::from(CHILD_WAIT);
    match futures_util::future::select(std::pin::pin!(ask), wait).await {
        futures_util::future::Either::Left((answer, _)) => answer,
        futures_util::future::Either::Right(_) => Err(Error::TreeBusy("a node's answer is late")),
    }
}
