//! The entry Worker: routes, validates and authorizes every request, then hands it to the
//! Durable Objects of its channel (or, through [`super::hub`], of the hub) as a typed
//! [`StreamCall`]. Nothing malformed gets past
//! here. One function per route; each returns `Result<Response, Error>`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use worker::{event, Context, Env, Request, Response, Url};

use super::contract::{StreamCall, StreamRequest, Target};
use super::cors;
use super::error::Error;
use super::held;
use super::http;
use super::hub;
use super::routes::{is_hub_path, route, Route, RouteError};
use crate::domain::auth::{check_bearer, check_reader, check_token};
use crate::domain::form;
use crate::domain::{
    BodyKind, ChannelName, Config, EventId, Message, MessageLimits, Publication, PublishError,
    Region,
};

/// The playground page (`GET /`), kept beside the code as the HTML it is.
const PAGE: &str = include_str!("../../web/playground.html");

/// The browser module of `examples/` that shows a resumable answer; the playground uses it.
const ANSWER_MODULE: &str = include_str!("../../examples/resumable-answer.js");

/// The query parameter that carries the listen secret (EventSource cannot set headers).
const TOKEN_PARAM: &str = "token";
/// The query parameter that resumes a stream, for clients that cannot set `Last-Event-ID`.
const LAST_EVENT_ID_PARAM: &str = "lastEventId";
/// The query parameter that sets a text body's event type.
const EVENT_PARAM: &str = "event";
/// `?stream=1`: a streaming publish, each NDJSON line published as it arrives.
const STREAM_PARAM: &str = "stream";
/// With `?stream=1`, `&end=1` ends the channel once the body has ended well.
const END_PARAM: &str = "end";

thread_local! {
    static WARNED_OPEN_PUBLISHING: Cell<bool> = const { Cell::new(false) };
    /// The configuration, read from the environment by the first request this isolate
    /// serves: an isolate's bindings never change (a new deployment, or new secrets,
    /// start new isolates), and reading them costs two dozen calls into JavaScript.
    static CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
}

/// The configuration, read once per isolate (an unusable one is read again each time,
/// so that every request reports it).
fn config(env: &Env) -> Result<Rc<Config>, Error> {
    if let Some(config) = CONFIG.with(|c| c.borrow().clone()) {
        return Ok(config);
    }
    let config = Rc::new(super::read_config(env)?);
    CONFIG.with(|c| *c.borrow_mut() = Some(Rc::clone(&config)));
    Ok(config)
}

#[event(fetch)]
pub async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    console_error_panic_hook::set_once();
    let config = match config(&env) {
        Ok(config) => config,
        Err(e) => return e.to_response(),
    };
    if config.publish_secret.is_none() && !WARNED_OPEN_PUBLISHING.with(|w| w.replace(true)) {
        worker::console_warn!(
            "PUBLISH_SECRET is not set: anyone can publish. Set it with `wrangler secret put PUBLISH_SECRET`."
        );
    }
    let origin = req.headers().get("Origin")?;
    let path = req.path();
    if is_hub_path(&path) && !config.mercure.enabled() {
        // An unconfigured hub does not exist, whatever the method.
        return Error::NotFound.to_response();
    }
    // Every hub path follows the hub's CORS policy, its errors included (§8.3).
    let policy = if is_hub_path(&path) {
        &cors::HUB
    } else {
        &cors::CHANNELS
    };
    let allowed = policy.allowed(&config, origin.as_deref());
    let routed = route(req.method().as_ref(), &path);
    let served = handle(routed, req, &env, &ctx, &config, allowed.clone()).await;
    let response = match served {
        Ok(response) => response,
        Err(e) => e.to_response()?,
    };
    // A channel's object has set them on its answer already; what the Worker or the hub
    // answered gets them here.
    cors::apply(response, policy.headers(allowed))
}

async fn handle(
    routed: Result<Route, RouteError>,
    req: Request,
    env: &Env,
    ctx: &Context,
    config: &Config,
    allowed: Option<String>,
) -> Result<Response, Error> {
    // Calls to a channel's object carry the CORS origin its answer is allowed to.
    let to = |channel, request| {
        StreamCall::new(Target::Channel(channel), request).allowing(allowed.clone())
    };
    match routed? {
        Route::Page => page(&req, config),
        Route::Preflight => cors::CHANNELS.preflight(allowed.is_some()),
        Route::Listen(channel) => {
            let call = to(channel, listen_request(&req, config)?);
            held::open(call, env, config).await
        }
        Route::Publish(channel) => match streaming(&req)? {
            Some(end) => {
                check_publisher(&req, config)?;
                let content_type = req.headers().get("Content-Type")?;
                match BodyKind::from_content_type(content_type.as_deref()) {
                    Ok(BodyKind::NdJson) => {}
                    _ => {
                        let t = content_type.unwrap_or_else(|| "text/plain".into());
                        return Err(PublishError::StreamNotNdJson(t).into());
                    }
                }
                let call = to(channel, StreamRequest::PublishStream { end });
                match req.inner().body() {
                    Some(body) => call.send_streaming(env, body).await,
                    None => call.send(env).await,
                }
            }
            None => {
                let request = publish_request(req, config).await?;
                to(channel, request).send(env).await
            }
        },
        Route::End(channel) => {
            let request = end_request(req, config).await?;
            to(channel, request).send(env).await
        }
        Route::DemoAnswer(channel) => {
            check_publisher(&req, config)?;
            super::demo::stream_answer(channel, env, ctx)
        }
        Route::AnswerModule => {
            let mut response = Response::ok(ANSWER_MODULE)?;
            let headers = response.headers_mut();
            headers.set("Content-Type", "text/javascript; charset=utf-8")?;
            headers.set("Cache-Control", "no-cache")?;
            Ok(response)
        }
        Route::Ping => {
            check_publisher(&req, config)?;
            to(ChannelName::default_channel(), ping_request())
                .send(env)
                .await
        }
        Route::Stats(channel) => {
            check_stats_reader(&req, config)?;
            to(channel, StreamRequest::Stats).send(env).await
        }
        Route::Hub(hub_route) => {
            let allowed = allowed.is_some();
            hub::serve(req, env, config, hub_route, allowed).await
        }
    }
}

/// `GET /`: the demo page, announcing the hub when there is one (§9.1).
fn page(req: &Request, config: &Config) -> Result<Response, Error> {
    let mut response = Response::from_html(PAGE)?;
    if let Some(link) = hub::discovery_link(config, &req.url()?) {
        response.headers_mut().set("Link", &link)?;
    }
    Ok(response)
}

/// `GET /listen`, `GET /channels/{name}/events`: the listen, once its token is checked.
fn listen_request(req: &Request, config: &Config) -> Result<StreamRequest, Error> {
    let url = req.url()?;
    check_token(
        query(&url, TOKEN_PARAM)?.as_deref(),
        config.listen_secret.as_deref(),
    )?;
    let requested = match req
        .headers()
        .get("Last-Event-ID")?
        .filter(|v| !v.is_empty())
    {
        Some(header) => Some(header),
        None => query(&url, LAST_EVENT_ID_PARAM)?,
    };
    let last_seen = requested.map(|id| EventId::parse(&id)).transpose()?;
    Ok(StreamRequest::Listen {
        last_seen,
        region: region_of(req),
        delivery: held::delivery(config),
    })
}

/// Where a request comes from, as far as the runtime says (`request.cf`; absent locally
/// or when the fields are not what Cloudflare documents).
pub(super) fn region_of(req: &Request) -> Region {
    use worker::js_sys::Reflect;
    let cf = Reflect::get(req.inner(), &"cf".into()).ok();
    let field = |name: &str| {
        cf.as_ref()
            .filter(|cf| cf.is_object())
            .and_then(|cf| Reflect::get(cf, &name.into()).ok())
            .and_then(|v| v.as_string())
    };
    let longitude = field("longitude").and_then(|l| l.parse::<f32>().ok());
    Region::locate(
        field("continent").as_deref(),
        field("country").as_deref(),
        longitude,
    )
}

/// `POST /channels/{name}/events`: the publish, once its bearer is checked and its body
/// read and validated.
async fn publish_request(mut req: Request, config: &Config) -> Result<StreamRequest, Error> {
    check_publisher(&req, config)?;
    Ok(match read_publication(&mut req, config).await? {
        Publication::One(message) => StreamRequest::Publish(message),
        Publication::Batch(messages) => StreamRequest::PublishBatch(messages),
    })
}

/// `POST /channels/{name}/end`: the ending, once its bearer is checked; a body, when
/// there is one, is its last events, read as a publish's.
async fn end_request(mut req: Request, config: &Config) -> Result<StreamRequest, Error> {
    check_publisher(&req, config)?;
    let body = http::read_body(&mut req, config.max_body_bytes).await?;
    let last = match body.is_empty() {
        true => Vec::new(),
        false => match parse_publication(&req, &body, config)? {
            Publication::One(message) => vec![message],
            Publication::Batch(messages) => messages,
        },
    };
    Ok(StreamRequest::End(last))
}

/// Whether a publish is a streaming one (`?stream=1`), and then whether it ends the
/// channel after (`&end=1`).
fn streaming(req: &Request) -> Result<Option<bool>, Error> {
    // Most publishes have no query: the URL is parsed only when there is one.
    if !req.inner().url().contains('?') {
        return Ok(None);
    }
    let url = req.url()?;
    let on = |name| Ok::<_, Error>(query(&url, name)?.as_deref() == Some("1"));
    match (on(STREAM_PARAM)?, on(END_PARAM)?) {
        (false, true) => Err(PublishError::EndWithoutStream.into()),
        (streamed, end) => Ok(streamed.then_some(end)),
    }
}

/// `GET|POST /ping`: publishes `pong` on the default channel.
fn ping_request() -> StreamRequest {
    StreamRequest::Publish(Message {
        data: "pong".into(),
        event_type: None,
        retry_ms: None,
    })
}

/// `GET /channels/{name}`: with either secret configured, it takes either credential.
fn check_stats_reader(req: &Request, config: &Config) -> Result<(), Error> {
    let url = req.url()?;
    Ok(check_reader(
        query(&url, TOKEN_PARAM)?.as_deref(),
        req.headers().get("Authorization")?.as_deref(),
        config.listen_secret.as_deref(),
        config.publish_secret.as_deref(),
    )?)
}

fn check_publisher(req: &Request, config: &Config) -> Result<(), Error> {
    let authorization = req.headers().get("Authorization")?;
    Ok(check_bearer(
        authorization.as_deref(),
        config.publish_secret.as_deref(),
    )?)
}

/// The channel API's query rule on top of the one decoder: the first value of a
/// parameter is the one used.
fn query(url: &Url, name: &str) -> Result<Option<String>, Error> {
    Ok(form::first(url.query().unwrap_or(""), name)?)
}

/// Reads and validates a publish body (the one time it is parsed).
async fn read_publication(req: &mut Request, config: &Config) -> Result<Publication, Error> {
    // An unsupported content type is refused before the body is read.
    BodyKind::from_content_type(req.headers().get("Content-Type")?.as_deref())?;
    let body = http::read_body(req, config.max_body_bytes).await?;
    parse_publication(req, &body, config)
}

/// Validates a publish body read from `req`, as its content type and query say.
fn parse_publication(req: &Request, body: &[u8], config: &Config) -> Result<Publication, Error> {
    let kind = BodyKind::from_content_type(req.headers().get("Content-Type")?.as_deref())?;
    let limits = MessageLimits {
        max_event_type_bytes: config.max_event_type_bytes,
    };
    // Most publishes have no query: the URL is parsed only when there is one.
    let url = req.inner().url();
    let event = if url.contains('?') {
        query(&req.url()?, EVENT_PARAM)?
    } else {
        None
    };
    Ok(Publication::parse(
        kind,
        body,
        event.as_deref(),
        limits,
        config.max_batch_events,
    )?)
}
