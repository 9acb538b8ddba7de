//! What both TripSage edge functions share: webhook signature verification, configuration, the
//! HTTP contract and its single error type, outgoing HTTP (`fetch`, and the PostgREST client on
//! it), and (on wasm) the seam to JavaScript.

pub mod config;
pub mod error;
pub mod fetch;
pub mod function;
#[cfg(all(feature = "fuzz", not(target_arch = "wasm32")))]
pub mod fuzz;
pub mod http;
pub mod payload;
pub mod redact;
pub mod rest;
pub mod signature;
pub mod upstream;
#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use config::{Capability, EdgeConfig};
pub use error::EdgeError;
pub use function::{finish, serve, Background, Delivery, EdgeFunction, Handled, RequestContext};
pub use http::{IncomingRequest, OutgoingResponse};
pub use payload::{is_uuid, Fields};
pub use signature::{WebhookSecret, WebhookVerifier};
