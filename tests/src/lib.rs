//! kspy end-to-end harness: an in-process Kubernetes API server that calls admission
//! webhooks like the real one, a kubelet stand-in, and helpers to run scenarios against it
//! or against a real cluster (`KSPY_E2E_KUBECONFIG`).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use kspy_e2e::{ApiServer, fixtures};
//! let server = ApiServer::builder()
//!     .namespace("prod", &[("team", "payments")])
//!     .pod(fixtures::web_pod("prod", "web"))
//!     .start()
//!     .await?;
//! let client = server.client("alice").await?; // kube::Client with alice's token
//! # Ok(()) }
//! ```

pub mod admission_chain;
pub mod apiserver;
pub mod fixtures;
pub mod identity;
pub mod kubeconfig;
pub mod kubelet;
pub mod scenario;
pub mod shell;
pub mod stub_webhook;
pub mod tls;
pub mod tools;

pub use admission_chain::{AdmissionChain, WebhookTarget};
pub use apiserver::{ApiServer, ApiServerBuilder, HarnessError};
pub use identity::{Identity, Rule};
pub use kubelet::{ImageBehavior, ImageRule, KubeletConfig};
