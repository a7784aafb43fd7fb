//! The entry Worker: routes, validates and authorizes every request, then hands it to the
//! Durable Object of its channel. Nothing malformed gets past here.

use std::cell::Cell;

use wasm_bindgen::JsValue;
use worker::{event, Context, Env, Headers, Method, Request, RequestInit, Response, Result, Url};

use super::channel_object::{
    CHANNEL_NAME_HEADER, INTERNAL_ORIGIN, LAST_EVENT_ID_PARAM, LISTEN_PATH, PUBLISH_PATH,
    STATS_PATH,
};
use super::http;
use super::routes::{route, Route, RouteError};
use super::CHANNEL_BINDING;
use crate::domain::auth::{check_bearer, check_token};
use crate::domain::{BodyKind, ChannelName, Config, EventId, Message, MessageLimits};

const PAGE: &str = include_str!("page.html");

thread_local! {
    static WARNED_OPEN_PUBLISHING: Cell<bool> = const { Cell::new(false) };
}

#[event(fetch)]
pub async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    console_error_panic_hook::set_once();
    let config = match super::read_config(&env) {
        Ok(config) => config,
        Err(e) => return http::error(500, e),
    };
    if config.publish_secret.is_none() && !WARNED_OPEN_PUBLISHING.with(|w| w.replace(true)) {
        worker::console_warn!(
            "PUBLISH_SECRET is not set: anyone can publish. Set it with `wrangler secret put PUBLISH_SECRET`."
        );
    }
    let origin = req.headers().get("Origin")?;
    let response = match handle(req, &env, &config).await {
        Ok(response) => response,
        Err(e) => {
            worker::console_error!("request failed: {e}");
            http::error(503, "channel unavailable, try again")?
        }
    };
    http::with_cors(response, &config.allowed_origins, origin.as_deref())
}

async fn handle(mut req: Request, env: &Env, config: &Config) -> Result<Response> {
    let route = match route(req.method().as_ref(), &req.path()) {
        Ok(route) => route,
        Err(e) => return route_error(&e),
    };
    let url = req.url()?;
    match route {
        Route::Page => Response::from_html(PAGE),
        Route::Preflight => {
            let origin = req.headers().get("Origin")?;
            http::preflight(&config.allowed_origins, origin.as_deref())
        }
        Route::Listen(channel) => {
            if let Err(e) = check_token(
                query(&url, "token").as_deref(),
                config.listen_secret.as_deref(),
            ) {
                return http::error(e.status(), e);
            }
            let requested = req
                .headers()
                .get("Last-Event-ID")?
                .filter(|v| !v.is_empty());
            let requested = requested.or_else(|| query(&url, LAST_EVENT_ID_PARAM));
            let mut path = LISTEN_PATH.to_string();
            if let Some(text) = requested {
                match EventId::parse(&text) {
                    Ok(id) => path = format!("{LISTEN_PATH}?{LAST_EVENT_ID_PARAM}={id}"),
                    Err(e) => return http::error(400, e),
                }
            }
            forward(env, &channel, Method::Get, &path, None).await
        }
        Route::Ping | Route::Publish(_) => {
            let authorization = req.headers().get("Authorization")?;
            if let Err(e) = check_bearer(authorization.as_deref(), config.publish_secret.as_deref())
            {
                return http::error(e.status(), e);
            }
            let (channel, message) = match route {
                Route::Publish(channel) => match read_message(&mut req, &url, config).await? {
                    Ok(message) => (channel, message),
                    Err(response) => return Ok(response),
                },
                _ => (
                    ChannelName::default_channel(),
                    Message {
                        data: "pong".into(),
                        event_type: None,
                        retry_ms: None,
                    },
                ),
            };
            forward(
                env,
                &channel,
                Method::Post,
                PUBLISH_PATH,
                Some(message.to_json()),
            )
            .await
        }
        Route::Stats(channel) => forward(env, &channel, Method::Get, STATS_PATH, None).await,
    }
}

fn route_error(e: &RouteError) -> Result<Response> {
    let mut response = http::error(e.status(), e.message())?;
    if let RouteError::MethodNotAllowed { allow } = e {
        response.headers_mut().set("Allow", allow)?;
    }
    Ok(response)
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Reads and validates a publish body; `Ok(Err(response))` is a client error to answer.
async fn read_message(
    req: &mut Request,
    url: &Url,
    config: &Config,
) -> Result<std::result::Result<Message, Response>> {
    let kind = match BodyKind::from_content_type(req.headers().get("Content-Type")?.as_deref()) {
        Ok(kind) => kind,
        Err(e) => return Ok(Err(http::error(e.status(), e)?)),
    };
    let too_large = || {
        http::error(
            413,
            format!("body is larger than {} bytes", config.max_body_bytes),
        )
    };
    let declared = req
        .headers()
        .get("Content-Length")?
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > config.max_body_bytes) {
        return Ok(Err(too_large()?));
    }
    let body = req.bytes().await?;
    if body.len() > config.max_body_bytes {
        return Ok(Err(too_large()?));
    }
    let limits = MessageLimits {
        max_event_type_bytes: config.max_event_type_bytes,
    };
    Ok(
        match Message::parse(kind, &body, query(url, "event").as_deref(), limits) {
            Ok(message) => Ok(message),
            Err(e) => Err(http::error(e.status(), e)?),
        },
    )
}

/// Sends an internal request to the channel's object and returns its response untouched,
/// so a stream's body is piped by the runtime, never by us.
async fn forward(
    env: &Env,
    channel: &ChannelName,
    method: Method,
    path: &str,
    body: Option<String>,
) -> Result<Response> {
    let stub = env
        .durable_object(CHANNEL_BINDING)?
        .get_by_name(channel.as_str())?;
    let headers = Headers::new();
    headers.set(CHANNEL_NAME_HEADER, channel.as_str())?;
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    if let Some(body) = body {
        init.with_body(Some(JsValue::from_str(&body)));
    }
    let request = Request::new_with_init(&format!("{INTERNAL_ORIGIN}{path}"), &init)?;
    stub.fetch_with_request(request).await
}
