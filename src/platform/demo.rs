//! The playground's "stream an answer" demo: a fake model's answer, token by token, piped
//! into a channel with a streaming publish that ends it, as a server relaying a model's
//! output would. The Worker writes the tokens into a stream, a few tens of milliseconds
//! apart, and that stream is the publish's body.

use std::time::Duration;

use serde_json::json;
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen_futures::{spawn_local, JsFuture};
use worker::web_sys::TransformStream;
use worker::{Context, Delay, Env, Response};

use super::contract::{StreamCall, StreamRequest, Target};
use super::error::Error;
use crate::domain::ChannelName;

/// The answer the demo streams.
const ANSWER: &str = "Server-sent events are the simple way to push live updates: the page \
opens an EventSource, and the server writes events to a response that never ends. This \
answer is one channel of sse-edge, published token by token by a streaming publish. Reload \
the page in the middle: the page resumes with the last id it had, and gets the rest once, \
in order. When the answer is done the channel ends, the page stops listening, and the \
channel's storage goes away a while later. No Redis, nothing to run beside the Worker.";

/// Time between two tokens.
const TOKEN_GAP: Duration = Duration::from_millis(60);

/// The answer's tokens: each word with the space before it.
pub fn tokens() -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    for (i, word) in ANSWER.split(' ').enumerate() {
        tokens.push(if i == 0 {
            word.into()
        } else {
            format!(" {word}")
        });
    }
    tokens
}

/// `POST /playground/answer/{name}`: starts streaming the answer into `channel` (ending it
/// after), and answers at once (202) with how many tokens are coming. The publish goes on
/// after the answer, for as long as the runtime lets work outlive its request, so that a
/// page reloaded in the middle does not stop it.
pub fn stream_answer(channel: ChannelName, env: &Env, ctx: &Context) -> Result<Response, Error> {
    let pipe = TransformStream::new()?;
    let writer = pipe.writable().get_writer()?;
    let tokens = tokens();
    let count = tokens.len();
    spawn_local(async move {
        for token in tokens {
            let line = format!("{}\n", json!({ "data": token, "event": "token" }));
            let chunk = Uint8Array::from(line.as_bytes());
            if JsFuture::from(writer.write_with_chunk(&chunk))
                .await
                .is_err()
            {
                return; // the publish stopped (the channel had ended): nothing more to send
            }
            Delay::from(TOKEN_GAP).await;
        }
        let _ = JsFuture::from(writer.close()).await;
    });
    let request = StreamRequest::PublishStream { end: true };
    let call = StreamCall::new(Target::Channel(channel.clone()), request);
    let env = env.clone();
    ctx.wait_until(async move {
        match call.send_streaming(&env, pipe.readable()).await {
            Ok(r) if r.status_code() == 200 => {}
            Ok(r) => worker::console_error!("the demo answer was refused: {}", r.status_code()),
            Err(e) => worker::console_error!("the demo answer failed: {e}"),
        }
    });
    let answer = json!({ "channel": channel.as_str(), "tokens": count });
    Ok(super::http::json(&answer)?.with_status(202))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tokens_make_the_answer_again() {
        let tokens = tokens();
        assert!(tokens.len() > 40, "long enough to reload in the middle");
        assert_eq!(tokens.concat(), ANSWER);
    }
}
