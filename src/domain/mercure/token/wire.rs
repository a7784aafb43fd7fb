//! The form grants travel in between the Worker and the hub object: their matchers as
//! written, for the object to compile.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::budget::MatcherBudget;
use super::super::topic::{MatcherError, TopicMatcher, TopicSpec};
use super::Generation;

/// Grants with their matchers as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grants {
    generation: Generation,
    exp: Option<u64>,
    base: String,
    details: Vec<Detail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Detail {
    publish: bool,
    subscribe: bool,
    topics: Vec<TopicSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload: Option<Value>,
}

impl From<super::Grants> for Grants {
    fn from(g: super::Grants) -> Grants {
        Grants {
            generation: g.generation,
            exp: g.exp,
            base: g.base,
            details: g
                .details
                .into_iter()
                .map(|d| Detail {
                    publish: d.publish,
                    subscribe: d.subscribe,
                    topics: d.topics.iter().map(|m| m.spec().clone()).collect(),
                    payload: d.payload,
                })
                .collect(),
            payload: g.payload,
        }
    }
}

impl Grants {
    /// Compiles the matchers, charging `budget`.
    pub fn compile(self, budget: &mut MatcherBudget) -> Result<super::Grants, MatcherError> {
        let w = self;
        let details = w
            .details
            .into_iter()
            .map(|d| {
                Ok(super::Detail {
                    publish: d.publish,
                    subscribe: d.subscribe,
                    topics: d
                        .topics
                        .iter()
                        .map(|spec| TopicMatcher::compile(spec, &w.base, budget))
                        .collect::<Result<_, MatcherError>>()?,
                    payload: d.payload,
                })
            })
            .collect::<Result<_, MatcherError>>()?;
        Ok(super::Grants {
            generation: w.generation,
            exp: w.exp,
            base: w.base,
            details,
            payload: w.payload,
        })
    }
}
