//! # kspy-admission — the decision engine
//!
//! Pure logic, no network: turns an `admission.k8s.io/v1` AdmissionReview into a verdict and a
//! default-injecting JSON patch, following the platform team's `DebugPolicy` files.
//!
//! The flow of one review, and where each step lives:
//!
//! 1. [`ParsedReview::from_slice`] checks the envelope (JSON, `AdmissionReview`, `v1`, a request).
//! 2. [`classify`] turns it into a [`DebugRequest`]: an `attach`, `copy` or `node` action and the
//!    debug subjects (new ephemeral containers, or the debug pod's containers).
//! 3. [`asks`] extracts what each subject asks for, normalized ([`ImageRef`], [`Capability`],
//!    [`HostPath`]).
//!    An attached subject also asks for what it reaches in its process namespace (`reach.rs`):
//!    by SYS_PTRACE, or as the user of the processes there ([`user_reach`]).
//! 4. [`policy`] holds the loaded, compiled policy files; [`cel`] the CEL environment: the
//!    compiled expressions. What makes an expression refused at load (length, depth, unknown
//!    functions, variables and fields) is in `cel_check.rs` and `cel_fields.rs`; the context
//!    it is evaluated in and the request's values bound into it, in `cel_context.rs`.
//! 5. [`decide`] computes the verdict, against the list of things each subject asks for that a
//!    grant must cover (`ask.rs`: the list, which grant covers each, how a denial names it);
//!    [`defaults`] builds the patch; [`Engine::judge`] ties the steps together and produces
//!    kube's `AdmissionResponse`.
//!
//! [`testing`] runs the test cases that live beside policies (`kspy policy test`).
#![warn(missing_docs)]

mod ask;
pub mod asks;
pub mod capability;
pub mod cel;
mod cel_check;
mod cel_context;
mod cel_fields;
mod cel_library;
pub mod classify;
pub mod decide;
pub mod decode_budget;
pub mod defaults;
pub mod engine;
pub mod glob;
pub mod hostpath;
pub mod image;
mod json_object;
mod kube_shape;
pub mod pod_os;
pub mod pod_security;
pub mod policy;
mod reach;
pub mod review;
mod search_steps;
pub mod testing;
pub mod user_reach;
pub mod wire;

pub use asks::Asks;
pub use capability::Capability;
pub use classify::{Action, DebugRequest, Subject};
pub use engine::{
    Endpoint, Engine, Judgement, NamespaceMiss, NamespaceOrigin, NoPolicyVerdict, Settings, Verdict,
};
pub use policy::{LoadError, LoadErrors, LoadWarning, PolicySet};
pub use wire::encode_review;

pub use hostpath::HostPath;
pub use image::ImageRef;

pub use review::{ParsedReview, ReviewError};
