//! Drives the `mercure` crate from the command line (one action per run):
//!
//!   mercure-rs-driver publish <hub-url> <publisher-key> <topic> [<alternate topic>...]
//!       [--data <text>] [--private]
//!       publishes with `mercure::Client::publish_update` and a `PublisherJwt` that the
//!       crate mints for `*`; prints the hub's answer (the update's id).
//!   mercure-rs-driver subscriber-jwt <subscriber-key> <max-age-seconds|none> <selector>...
//!       prints a `SubscriberJwt` the crate mints (`*` is the wildcard selector).
//!   mercure-rs-driver cookie-name
//!       prints the crate's authorization cookie name.
//!
//! Exits 1 with a message on stderr when the crate refuses or the request fails.
use std::process::ExitCode;
use std::time::Duration;

use mercure::client::PublishUpdatePrivacy;
use mercure::jwt::{PublisherJwtSecret, SubscriberJwtMaxAge, SubscriberJwtSecret};
use mercure::{HubUrl, PublisherJwt, SubscriberJwt, Topic, TopicSelector};
use url::Url;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn selector(s: &str) -> Result<TopicSelector> {
    Ok(if s == "*" {
        TopicSelector::Wildcard
    } else {
        TopicSelector::UriTemplate(s.try_into()?)
    })
}

async fn publish(args: &[String]) -> Result<String> {
    let [hub, key, rest @ ..] = args else {
        return Err("publish <hub-url> <publisher-key> <topic>... [--data D] [--private]".into());
    };
    let mut topics = Vec::new();
    let mut data = None;
    let mut privacy = PublishUpdatePrivacy::Public;
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--data" => data = Some(it.next().ok_or("--data needs a value")?.clone()),
            "--private" => privacy = PublishUpdatePrivacy::Private,
            topic => topics.push(topic.parse::<Url>()?),
        }
    }
    if topics.is_empty() {
        return Err("publish needs a topic".into());
    }
    let canonical = topics.remove(0);
    let jwt = PublisherJwt::new(
        &PublisherJwtSecret::from(key.as_bytes().to_vec()),
        vec![TopicSelector::Wildcard],
    )?;
    let client = mercure::Client::new(
        reqwest::Client::new(),
        HubUrl::try_from(hub.parse::<Url>()?)?,
        jwt,
    );
    let id = client
        .publish_update(Topic::new(canonical, topics), data.as_deref(), privacy)
        .await?;
    Ok(id.to_string())
}

fn subscriber_jwt(args: &[String]) -> Result<String> {
    let [key, max_age, selectors @ ..] = args else {
        return Err("subscriber-jwt <subscriber-key> <max-age-seconds|none> <selector>...".into());
    };
    let max_age = match max_age.as_str() {
        "none" => None,
        secs => Some(SubscriberJwtMaxAge::try_from(Duration::from_secs(
            secs.parse()?,
        ))?),
    };
    let selectors = selectors
        .iter()
        .map(|s| selector(s))
        .collect::<Result<Vec<_>>>()?;
    let jwt = SubscriberJwt::new(
        &SubscriberJwtSecret::from(key.as_bytes().to_vec()),
        max_age,
        selectors,
    )?;
    Ok(jwt.to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("publish") => publish(&args[1..]).await,
        Some("subscriber-jwt") => subscriber_jwt(&args[1..]),
        Some("cookie-name") => Ok(mercure::cookie::MERCURE_AUTHORIZATION_COOKIE_NAME.to_string()),
        _ => Err("usage: mercure-rs-driver publish|subscriber-jwt|cookie-name ...".into()),
    };
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("mercure-rs-driver: {err}");
            ExitCode::FAILURE
        }
    }
}
