//! The Mercure hub's routes in the Worker (`/.well-known/mercure`): tokens read and
//! verified, requests validated, then a [`StreamCall`] to the hub's objects (a subscribe
//! walks down the hub's tree like a listen; everything else goes to its root). The hub's
//! objects are [`super::object::hub`]. Its CORS policy is [`super::cors::HUB`]; the rules
//! themselves are the domain's (`domain::mercure`).

pub mod credentials;

use serde_json::json;
use wasm_bindgen::JsCast;
use worker::js_sys;
use worker::{Date, Env, Headers, Request, Response, Url};

use self::credentials::{claimed_origin, find_token, may_use_cookie, Carriers, Source};
use super::contract::{
    StreamCall, StreamRequest, SubscriberCall, SubscriptionsCall, Target, UpdateCall,
};
use super::cors;
use super::error::{Challenge, Error, HubRefusal};
use super::http;
use super::object::hub::Mercure;
use super::object::Face;
use super::routes::HubRoute;
use crate::domain::mercure::{
    self, urn_uuid, verify, verify_spec, Action, FieldLimits, SubscribeQuery, TokenContext,
    TokenError, UpdateForm, DETAIL_TYPE,
};
use crate::domain::{BodyKind, Config};

/// The request's view of the hub: R and the metadata URL, from the URL as received.
struct HubRequest<'a> {
    head: bool,
    headers: Headers,
    url: Url,
    config: &'a Config,
    origin: String,
}

impl HubRequest<'_> {
    /// R: `{scheme}://{host}/.well-known/mercure`.
    fn resource(&self) -> String {
        mercure::resource(&self.origin)
    }

    fn refuse(&self, kind: Challenge) -> Error {
        Error::Hub(HubRefusal {
            kind,
            metadata_url: mercure::metadata_url(&self.resource()),
        })
    }

    /// Reads and verifies the request's token with `key`; `None` when it has none.
    /// The request's token, verified with `key` by `verify` (compiling its matchers, or
    /// only checking them), as the grants it makes; `None` when it has none.
    fn grants<T>(
        &self,
        key: Option<&str>,
        publishing: bool,
        verify: impl Fn(&str, &[u8], &TokenContext) -> Result<T, TokenError>,
    ) -> Result<Option<T>, Error> {
        let headers = &self.headers;
        let authorization = headers.get("Authorization")?;
        let cookie = headers.get("Cookie")?;
        let presented = find_token(Carriers {
            authorization: authorization.as_deref(),
            query: self.url.query().unwrap_or(""),
            cookie: cookie.as_deref(),
        })
        .map_err(|e| self.refuse(Challenge::InvalidRequest(e.0)))?;
        let Some(presented) = presented else {
            return Ok(None);
        };
        if publishing && presented.source == Source::Cookie {
            let claimed = claimed_origin(
                headers.get("Origin")?.as_deref(),
                headers.get("Referer")?.as_deref(),
            );
            let allowed = claimed.is_some_and(|origin| {
                may_use_cookie(cors::HUB.origins(self.config), &origin, &self.origin)
            });
            if !allowed {
                return Err(self.refuse(Challenge::InvalidRequest(
                    "a cookie token publishes only from an allowed origin",
                )));
            }
        }
        let ctx = TokenContext {
            now_s: Date::now().as_millis() / 1000,
            issuers: self.config.mercure.issuers.clone(),
            resource: self.resource(),
            limits: self.config.mercure.matcher_limits,
        };
        let key = key.ok_or_else(|| self.refuse(Challenge::InvalidToken))?;
        match verify(&presented.token, key.as_bytes(), &ctx) {
            Ok(grants) => Ok(Some(grants)),
            Err(e) => {
                worker::console_log!("hub token refused: {}", e.reason());
                Err(self.refuse(Challenge::InvalidToken))
            }
        }
    }
}

/// Serves a hub route (`allowed`: whether the request's origin is, by the hub's CORS); its
/// response gets the hub's CORS headers.
pub async fn serve(
    mut req: Request,
    env: &Env,
    config: &Config,
    route: HubRoute,
    allowed: bool,
) -> Result<Response, Error> {
    if !config.mercure.enabled() {
        return Err(Error::NotFound);
    }
    let url = req.url()?;
    let hub = HubRequest {
        head: req.method() == worker::Method::Head,
        origin: url.origin().ascii_serialization(),
        url,
        config,
        headers: req.headers().clone(),
    };
    match route {
        HubRoute::Subscribe => subscribe(&hub, &req, env).await,
        HubRoute::Publish => {
            let update = read_publish(&hub, &mut req).await?;
            let request = StreamRequest::PublishUpdates(vec![update]);
            StreamCall::new(Target::Hub, request).send(env).await
        }
        HubRoute::Preflight => cors::HUB.preflight(allowed),
        HubRoute::Metadata => metadata(&hub),
        HubRoute::Stats => {
            // Its operators' view, behind the publisher credential.
            hub.grants(config.mercure.publisher_key.as_deref(), false, verify)?
                .ok_or_else(|| hub.refuse(Challenge::Missing))?;
            StreamCall::new(Target::Hub, StreamRequest::Stats)
                .send(env)
                .await
        }
        HubRoute::Subscriptions(remainder) => {
            if !config.mercure.subscriptions {
                return Err(Error::NotFound);
            }
            // A subscriber token is required, even for an anonymous hub (§7.4).
            let grants = hub
                .grants(config.mercure.subscriber_key.as_deref(), false, verify_spec)?
                .ok_or_else(|| hub.refuse(Challenge::Missing))?;
            let asked = SubscriptionsCall {
                base: hub.resource(),
                raw_path: hub.url.path().to_string(),
                remainder,
                grants,
                if_none_match: hub.headers.get("If-None-Match")?,
            };
            let request = StreamRequest::Subscriptions(asked);
            StreamCall::new(Target::Hub, request).send(env).await
        }
    }
}

/// `GET /.well-known/mercure` (§6): down the hub's tree to the object that seats it.
async fn subscribe(hub: &HubRequest<'_>, req: &Request, env: &Env) -> Result<Response, Error> {
    // Passed on: the object compiles them where it uses them.
    let grants = hub.grants(
        hub.config.mercure.subscriber_key.as_deref(),
        false,
        verify_spec,
    )?;
    if grants.is_none() && !hub.config.mercure.anonymous {
        return Err(hub.refuse(Challenge::Missing));
    }
    let query = SubscribeQuery::parse(hub.url.query().unwrap_or(""), &hub.resource())?;
    let header = hub.headers.get("Last-Event-ID")?.filter(|v| !v.is_empty());
    let cursor = query.cursor(header.as_deref()).map(str::to_string);
    if hub.head {
        // A HEAD learns what a subscribe would answer without becoming a subscriber.
        return Ok(Response::empty()?.with_headers(Mercure::stream_headers()?));
    }
    let subscriber = SubscriberCall {
        base: hub.resource(),
        subscriber_id: random_id()?,
        specs: query.specs().to_vec(),
        grants,
        cursor,
    };
    let request = StreamRequest::Subscribe {
        subscriber,
        region: super::worker::region_of(req),
        delivery: super::held::delivery(hub.config),
        after_seq: None,
    };
    super::held::open(StreamCall::new(Target::Hub, request), env, hub.config).await
}

/// `POST /.well-known/mercure` (§4), checked in the order of §4.1.
async fn read_publish(hub: &HubRequest<'_>, req: &mut Request) -> Result<UpdateCall, Error> {
    let grants = hub
        .grants(hub.config.mercure.publisher_key.as_deref(), true, verify)?
        .ok_or_else(|| hub.refuse(Challenge::Missing))?;
    // A form and nothing else, its type read as a channel's is (§4.2); none is no form.
    let content_type = req.headers().get("Content-Type")?;
    let is_form =
        content_type.is_some_and(|t| BodyKind::from_content_type(Some(&t)) == Ok(BodyKind::Form));
    if !is_form {
        return Err(Error::NotAForm);
    }
    let body = http::read_body(req, hub.config.max_body_bytes).await?;
    let form = UpdateForm::parse(&body)?;
    if !grants.allows_all(Action::Publish, form.topics()?) {
        return Err(hub.refuse(Challenge::InsufficientScope));
    }
    let limits = FieldLimits {
        id_bytes: hub.config.mercure.max_id_bytes,
        type_bytes: hub.config.max_event_type_bytes,
        topic_bytes: hub.config.mercure.max_topic_bytes,
    };
    let update = form.validate(&hub.resource(), &limits)?;
    let id = match &update.id {
        Some(id) => id.clone(),
        None => random_id()?,
    };
    Ok(UpdateCall { update, id })
}

/// `GET /.well-known/oauth-protected-resource/.well-known/mercure` (§9.2).
fn metadata(hub: &HubRequest<'_>) -> Result<Response, Error> {
    let mercure = &hub.config.mercure;
    if mercure.publisher_key.is_none() && mercure.subscriber_key.is_none() {
        return Err(Error::NotFound);
    }
    let mut document = json!({
        "resource": hub.resource(),
        "authorization_details_types_supported": [DETAIL_TYPE],
        "bearer_methods_supported": ["header"],
        "mercure_cookie": credentials::COOKIES[0],
    });
    if mercure.subscriptions {
        document["mercure_subscriptions"] = json!(true);
    }
    http::json(&document)
}

/// The `Link` header announcing the hub (§9.1), when there is one.
pub fn discovery_link(config: &Config, url: &Url) -> Option<String> {
    config.mercure.enabled().then(|| {
        let resource = mercure::resource(&url.origin().ascii_serialization());
        format!("<{resource}>; rel=\"mercure\"")
    })
}

/// A new `urn:uuid:` id (updates, subscribers).
pub(crate) fn random_id() -> Result<String, Error> {
    Ok(urn_uuid(random_bytes()?))
}

/// 16 bytes from the runtime's secure random source (`crypto.getRandomValues`).
fn random_bytes() -> Result<[u8; 16], Error> {
    let crypto = js_sys::Reflect::get(&js_sys::global(), &"crypto".into())?;
    let fill: js_sys::Function =
        js_sys::Reflect::get(&crypto, &"getRandomValues".into())?.dyn_into()?;
    let array = js_sys::Uint8Array::new_with_length(16);
    fill.call1(&crypto, &array)?;
    let mut out = [0u8; 16];
    array.copy_to(&mut out);
    Ok(out)
}
