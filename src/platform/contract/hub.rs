//! The Mercure hub's calls: what its object is asked to do, as a JSON body.

use serde::{Deserialize, Serialize};
use worker::{Env, Method, Request, RequestInit, Response};

use super::{HUB_BINDING, HUB_NAME, HUB_URL};
use crate::domain::mercure::{GrantsSpec, TopicSpec, Update};
use crate::platform::error::Error;

/// What the Mercure hub's object is asked to do. The Worker has verified the token and
/// validated the request; the object matches and stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HubCall {
    /// Open a stream for a subscriber.
    Subscribe {
        /// R, the hub's URL as the client addressed it (relative patterns resolve to it).
        base: String,
        subscriber_id: String,
        specs: Vec<TopicSpec>,
        grants: Option<GrantsSpec>,
        /// The resume cursor: an id, or `earliest`.
        cursor: Option<String>,
    },
    /// Dispatch an update; `id` is the publisher's or a generated one.
    Publish { update: Update, id: String },
    /// Answer the subscriptions API (§7.3): the path's remainder after
    /// `/.well-known/mercure/subscriptions`, raw, and the whole path as received.
    Subscriptions {
        base: String,
        remainder: String,
        raw_path: String,
        grants: GrantsSpec,
        if_none_match: Option<String>,
    },
}

impl HubCall {
    /// The call's wire form: a JSON body.
    pub fn to_wire(&self) -> String {
        serde_json::to_string(self).expect("a hub call is always JSON")
    }

    pub fn from_wire(body: &str) -> Result<HubCall, Error> {
        serde_json::from_str(body).map_err(|e| Error::Contract(format!("hub call: {e}")))
    }

    /// Sends the call to the hub's object; its response comes back untouched.
    pub async fn send(&self, env: &Env) -> Result<Response, Error> {
        let stub = env.durable_object(HUB_BINDING)?.get_by_name(HUB_NAME)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(self.to_wire().into()));
        let request = Request::new_with_init(HUB_URL, &init)?;
        Ok(stub.fetch_with_request(request).await?)
    }

    pub async fn read(req: &mut Request) -> Result<HubCall, Error> {
        HubCall::from_wire(&req.text().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hub_call_reads_back_as_it_was_sent_grants_and_all() {
        use crate::domain::mercure::{verify, MatcherBudget, MatcherKind, TokenContext};
        // A 0.x token granting subscribe on a template, signed by hand.
        let grants = {
            use base64::Engine;
            use hmac::{KeyInit, Mac};
            let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
            let signing = format!(
                "{}.{}",
                b64(r#"{"alg":"HS256"}"#),
                b64(r#"{"mercure":{"subscribe":["https://a.test/{x}"],"payload":{"u":1}}}"#)
            );
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"k").unwrap();
            mac.update(signing.as_bytes());
            let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(mac.finalize().into_bytes());
            let ctx = TokenContext {
                now_s: 0,
                issuers: vec![],
                resource: "http://h.test/.well-known/mercure".into(),
                limits: Default::default(),
            };
            verify(&format!("{signing}.{sig}"), b"k", &ctx).unwrap()
        };
        let call = HubCall::Subscribe {
            base: "http://h.test/.well-known/mercure".into(),
            subscriber_id: "urn:uuid:1".into(),
            specs: vec![TopicSpec::new(MatcherKind::UrlPattern, "/books/:id")],
            grants: Some(grants.spec()),
            cursor: Some("earliest".into()),
        };
        let back = HubCall::from_wire(&call.to_wire()).unwrap();
        assert_eq!(back.to_wire(), call.to_wire());
        let HubCall::Subscribe { grants, .. } = back else {
            panic!("not a subscribe")
        };
        let grants = grants
            .unwrap()
            .compile(&mut MatcherBudget::new(Default::default()))
            .unwrap();
        assert!(grants.allows(
            crate::domain::mercure::Action::Subscribe,
            "https://a.test/y"
        ));
        assert!(!grants.allows(
            crate::domain::mercure::Action::Subscribe,
            "https://b.test/y"
        ));
        let publish = HubCall::Publish {
            update: Update {
                topics: vec!["t".into()],
                data: "a\nb".into(),
                private: true,
                id: None,
                event_type: Some("x".into()),
                retry_ms: Some(3),
            },
            id: "urn:uuid:2".into(),
        };
        assert_eq!(
            HubCall::from_wire(&publish.to_wire()).unwrap().to_wire(),
            publish.to_wire()
        );
        assert!(matches!(HubCall::from_wire("{}"), Err(Error::Contract(_))));
    }
}
