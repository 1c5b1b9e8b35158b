//! Deterministic mutation testing ("fuzzing") without a fuzzing crate, shared by
//! `mutated_reviews.rs` and `mutated_policies.rs`: a seeded generator ([`rng`]), a run with its
//! seed, case count and guard against panics and hangs ([`run`]), the shipped library
//! ([`library`]) mutations of JSON ([`json`]), YAML ([`yaml`]) and CEL ([`cel`]). The tests' own oracles are in their files.

#![allow(dead_code)]

pub mod cel;
pub mod json;
pub mod library;
pub mod rng;
pub mod run;
pub mod yaml;
