//! # kspy-webhook — kspy's admission webhook server
//!
//! Serves kspy's decisions ([`kspy_admission::Engine`]) to the Kubernetes API server:
//! `POST /mutate` and `POST /validate` over HTTPS (rustls, TLS 1.2/1.3, HTTP/1.1 and HTTP/2),
//! `GET /healthz`, `/readyz` and `/metrics` on a separate plain-HTTP admin port. The serving
//! certificate and the policy directory are polled and reloaded when they change; a broken
//! change keeps what was in force.
//!
//! In-process use (tests, the e2e crate):
//!
//! ```no_run
//! # async fn demo() -> Result<(), kspy_webhook::WebhookError> {
//! use kspy_webhook::{ServerConfig, TlsFiles, start};
//! let tls = TlsFiles { cert: "certs/tls.crt".into(), key: "certs/tls.key".into() };
//! let server = start(ServerConfig::new("policies", tls).on_loopback()).await?;
//! println!("https://{} admin http://{}", server.addr, server.admin_addr);
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Modules, one idea each: [`config`] (settings and defaults), [`error`] (why a start fails),
//! [`server`] (start/stop), `listen` (binding, `[::]` as both families), `serve` (the TLS
//! accept loop), `io_deadlines` and `idle_close` (a connection's time limits), `eviction`
//! (room at the connection limit), `routes`, `review`, `error_status` and `call_timeout` (the
//! HTTP semantics of a review and its deadline), `hints` (a review's uid and namespace before
//! parsing), `judge_pool` (the threads that judge), `body` and `body_budget` (reading bodies
//! within `--max-buffered-bytes`), [`namespaces`] (where Namespace objects come from),
//! [`events`] and [`event_series`] (Kubernetes Events about decisions), `admin`, [`metrics`],
//! `policy_watch` and [`engine_cell`] (policy reload), [`telemetry`], `json_lines`,
//! `text_fields` and `bounded_text` (logs and traces), `state` (what handlers share), [`tls`],
//! [`client`] / [`load`] / [`floor`] (the `kspy-load` benchmark), [`duration`] (flag parsing).

#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod duration;
pub mod engine_cell;
pub mod error;
pub mod event_series;
pub mod events;
pub mod floor;
pub mod load;
pub mod metrics;
pub mod namespaces;
pub mod server;
pub mod telemetry;
pub mod tls;

mod admin;
mod body;
mod body_budget;
mod bounded_text;
mod call_timeout;
mod error_status;
mod eviction;
mod hints;
mod idle_close;
mod io_deadlines;
mod json_lines;
mod judge_pool;
mod listen;
#[cfg(test)]
mod log_capture;
mod policy_source;
mod policy_watch;
mod review;
mod routes;
mod serve;
mod state;
mod text_fields;

pub use config::{ClientAuth, FaultInjection, ServerConfig, TlsFiles};
pub use error::WebhookError;
pub use namespaces::NamespaceSource;
pub use policy_watch::{fingerprint as policy_fingerprint, load_engine};
pub use serve::ConnectionLimits;
pub use server::{RunningServer, ShutdownHandle, run, start};
