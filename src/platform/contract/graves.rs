//! The calls to the graves: the objects that remember, for `GRAVE_SECONDS`, the channels
//! whose storage was deleted after they ended, so that their names say so (410) instead
//! of starting over empty. A channel's root buries itself before it deletes its storage,
//! and a root with nothing stored looks itself up once per instance.
//!
//! The graves are spread over [`GRAVE_SHARDS`] objects by a hash of the channel's name, so
//! that no one object takes every lookup.

use worker::{Env, Method, Request, RequestInit, Url};

use super::wire::Wire;
use crate::domain::form;
use crate::domain::{ChannelName, Grave};
use crate::platform::error::Error;

/// The namespace binding of the graves (wrangler.toml).
pub const GRAVES_BINDING: &str = "GRAVES";
/// How many objects the graves are spread over. Changing it forgets every grave.
pub const GRAVE_SHARDS: u64 = 16;

const ORIGIN: &str = "https://graves.internal";
const BURY: &str = "/bury";
const FIND: &str = "/find";
const CHANNEL: &str = "channel";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraveCall {
    /// Remember that `channel` was deleted, and how it had ended (answered 204).
    Bury { channel: ChannelName, grave: Grave },
    /// How `channel` was deleted, if it was and its grave still stands (200 with the
    /// grave, or 404).
    Find(ChannelName),
}

impl GraveCall {
    pub fn channel(&self) -> &ChannelName {
        match self {
            GraveCall::Bury { channel, .. } | GraveCall::Find(channel) => channel,
        }
    }

    /// The name of the object that keeps `channel`'s grave.
    pub fn shard_name(channel: &ChannelName) -> String {
        // FNV-1a: stable across builds and runtimes, unlike the standard library's hasher.
        let hash = channel
            .as_str()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        format!("graves-{}", hash % GRAVE_SHARDS)
    }

    pub fn to_wire(&self) -> Wire {
        let mut url = Url::parse(ORIGIN).expect("the internal origin is a URL");
        url.query_pairs_mut()
            .append_pair(CHANNEL, self.channel().as_str());
        match self {
            GraveCall::Bury { grave, .. } => {
                url.set_path(BURY);
                let body = serde_json::to_string(grave).expect("a grave is JSON");
                Wire {
                    method: Method::Post,
                    url,
                    body: Some(body),
                }
            }
            GraveCall::Find(_) => {
                url.set_path(FIND);
                Wire {
                    method: Method::Get,
                    url,
                    body: None,
                }
            }
        }
    }

    pub fn from_wire(wire: Wire) -> Result<GraveCall, Error> {
        let bad = |what: &str| Error::Contract(format!("a grave call: {what}"));
        let query = form::pairs(wire.url.query().unwrap_or("").as_bytes())
            .map_err(|e| bad(&e.to_string()))?;
        let channel = query
            .iter()
            .find(|(k, _)| k == CHANNEL)
            .ok_or_else(|| bad("no channel"))
            .and_then(|(_, v)| ChannelName::parse(v).map_err(|e| bad(&e.to_string())))?;
        match (wire.method, wire.url.path()) {
            (Method::Post, BURY) => {
                let body = wire.body.ok_or_else(|| bad("no body"))?;
                let grave = serde_json::from_str(&body).map_err(|e| bad(&e.to_string()))?;
                Ok(GraveCall::Bury { channel, grave })
            }
            (Method::Get, FIND) => Ok(GraveCall::Find(channel)),
            (method, path) => Err(bad(&format!("{method:?} {path}"))),
        }
    }

    /// Sends the call to the channel's graves object: a found grave, or none (buried, or
    /// not found).
    pub async fn send(&self, env: &Env) -> Result<Option<Grave>, Error> {
        let namespace = env.durable_object(GRAVES_BINDING)?;
        let stub = namespace.get_by_name(&Self::shard_name(self.channel()))?;
        let wire = self.to_wire();
        let mut init = RequestInit::new();
        init.with_method(wire.method);
        if let Some(body) = wire.body {
            init.with_body(Some(body.into()));
        }
        let request = Request::new_with_init(wire.url.as_str(), &init)?;
        let mut response = stub.fetch_with_request(request).await?;
        match (self, response.status_code()) {
            (GraveCall::Bury { .. }, 204) | (GraveCall::Find(_), 404) => Ok(None),
            (GraveCall::Find(_), 200) => Ok(Some(response.json().await?)),
            (_, status) => Err(Error::Contract(format!("the graves answered {status}"))),
        }
    }

    /// Reads the call a graves object received.
    pub async fn read(req: &mut Request) -> Result<GraveCall, Error> {
        let method = req.method();
        let body = match method {
            Method::Post => Some(req.text().await?),
            _ => None,
        };
        GraveCall::from_wire(Wire {
            method,
            url: req.url()?,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grave_calls_read_back_as_sent_and_a_channel_always_has_the_same_shard() {
        let channel = ChannelName::parse("answer-7f3a").unwrap();
        for call in [
            GraveCall::Find(channel.clone()),
            GraveCall::Bury {
                channel: channel.clone(),
                grave: Grave {
                    last_id: 12,
                    ended_at_ms: 1_700_000_000_000,
                    deleted_at_ms: 1_700_086_400_000,
                },
            },
        ] {
            assert_eq!(GraveCall::from_wire(call.to_wire()).unwrap(), call);
        }
        assert_eq!(
            GraveCall::shard_name(&channel),
            GraveCall::shard_name(&channel)
        );
        let shards: std::collections::HashSet<String> = (0..200)
            .map(|i| GraveCall::shard_name(&ChannelName::parse(&format!("c{i}")).unwrap()))
            .collect();
        assert_eq!(
            shards.len() as u64,
            GRAVE_SHARDS,
            "names spread over every shard"
        );
    }
}
