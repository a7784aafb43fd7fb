//! The Mercure hub's face of the platform: reading tokens from requests, CORS for the
//! hub's routes, and the hub's Durable Object.

pub mod cors;
pub mod credentials;
