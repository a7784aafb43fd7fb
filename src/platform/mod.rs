//! Layer 3: the Workers runtime. Thin: it turns HTTP and storage into calls on the domain.
//! - [`routes`]: which request goes where (pure, tested natively);
//! - [`error`]: the one error type, and the one place that turns it into a response;
//! - [`contract`]: the typed calls between the Worker and the objects, and between objects;
//! - `worker`: the entry Worker: validation, authorization, CORS, one function per route;
//! - `cors`: both faces' CORS policies, as data, and the one place their headers are made;
//! - `object`: the one Durable Object implementation (the tree's machinery) and its two
//!   faces, the `Channel` and `Hub` classes;
//! - `hub`: the hub's routes in the Worker;
//! - `demo`: the playground's streamed answer;
//! - `graves`: the `Graves` class, which remembers channels deleted after they ended;
//! - `outlet` and `sql_log`: the runtime's listener streams and history storage;
//!   `open_streams`: every open stream also known outside the wasm memory, so that a
//!   lost state ends them.

pub mod contract;
mod cors;
mod demo;
pub mod error;
mod graves;
mod held;
mod host;
mod http;
pub mod hub;
mod object;
mod object_counts;
mod open_streams;
mod outlet;
pub mod routes;
mod seat_specs;
mod sql_log;
mod worker;

use crate::domain::{Config, ConfigError};

pub use contract::CHANNEL_BINDING;

/// Reads the configuration from the environment (`[vars]` and secrets).
pub fn read_config(env: &::worker::Env) -> Result<Config, ConfigError> {
    Config::from_lookup(|name| {
        env.var(name)
            .map(|v| v.to_string())
            .or_else(|_| env.secret(name).map(|s| s.to_string()))
            .ok()
    })
}

/// What a publish's data asks of the object in a test build (`--features test-faults`):
/// how the tests show what a lost state does. Other builds have no such way.
#[derive(Debug, PartialEq, Eq)]
enum Fault {
    None,
    /// Forget the object's state and close its seats' sockets, as a restart of the object
    /// alone does (the Worker that holds their streams attaches again).
    Restart,
}

/// `sse-edge-test:panic` makes the object that takes it panic, as a bug or running out of
/// memory would; `sse-edge-test:restart` asks for [`Fault::Restart`].
#[cfg(feature = "test-faults")]
fn injected_fault(data: &str) -> Fault {
    match data {
        "sse-edge-test:panic" => panic!("injected fault"),
        "sse-edge-test:restart" => Fault::Restart,
        _ => Fault::None,
    }
}

#[cfg(not(feature = "test-faults"))]
fn injected_fault(_data: &str) -> Fault {
    Fault::None
}
