//! Seeded mutations (2 000) of the repository's fixture reviews (`policies/fixtures/`), judged under the
//! repository's policies (`policies/`) over real HTTPS: bytes flipped, cut, duplicated and
//! dropped; values nested deep, made huge numbers or odd Unicode; `uid`, `request` and
//! `object` given twice. Every answer is well-formed HTTP: 400 exactly when the engine refuses
//! the bytes, otherwise 200 with the verdict the engine gives those same bytes and their uid;
//! an allow of a mutated denied request only when the mutated body, decoded strictly, is
//! another request. The server keeps serving throughout.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kspy_admission::{Endpoint, Engine, ParsedReview, PolicySet, Settings};
use kspy_webhook::client::{HttpVersion, HttpsConnection};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// JSON decoded strictly: an object with a key twice is refused (serde_json keeps the last).
struct Strict;

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut keys = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value::<Strict>()?;
        }
        Ok(Strict)
    }
}

/// The document, when `bytes` are JSON without a key twice in an object.
fn strictly(bytes: &[u8]) -> Option<Value> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Strict::deserialize(&mut de).ok()?;
    de.end().ok()?;
    serde_json::from_slice(bytes).ok()
}

struct Base {
    name: String,
    bytes: Vec<u8>,
    value: Value,
    allowed: bool,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_owned()
}

fn bases(engine: &Engine) -> Vec<Base> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(repo().join("policies/fixtures"))
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("fixture");
            let parsed = ParsedReview::from_slice(&bytes).expect("a fixture parses");
            let allowed = engine
                .judge(&parsed, Endpoint::Validate, None)
                .response
                .allowed;
            Base {
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                value: serde_json::from_slice(&bytes).expect("JSON"),
                bytes,
                allowed,
            }
        })
        .collect()
}

/// Where string values start (`": "`) in `text`: the index of the opening quote and the one
/// after the closing quote.
fn string_values(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 3 < text.len() {
        if &text[i..i + 3] == b": \"" {
            let start = i + 2;
            let mut j = start + 1;
            while j < text.len() && !(text[j] == b'"' && text[j - 1] != b'\\') {
                j += 1;
            }
            if j < text.len() {
                out.push((start, j + 1));
            }
            i = j;
        }
        i += 1;
    }
    out
}

fn splice(bytes: &[u8], from: usize, to: usize, with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + with.len());
    out.extend_from_slice(&bytes[..from]);
    out.extend_from_slice(with);
    out.extend_from_slice(&bytes[to..]);
    out
}

fn insert_after(bytes: &[u8], marker: &[u8], with: &[u8]) -> Vec<u8> {
    match bytes.windows(marker.len()).position(|w| w == marker) {
        Some(at) => splice(bytes, at + marker.len(), at + marker.len(), with),
        None => bytes.to_vec(),
    }
}

const ODD: &[&[u8]] = &[
    br#""\ud800""#,
    br#""\udc00sre""#,
    br#""sre\u0000""#,
    b"\"sre\x00\"",
    br#""\ud83d\ude00""#,
    b"\"\xff\xfe\"",
    b"\"\xc0\x80\"",
    b"\"\xed\xa0\x80\"",
    br#""\uFEFFsre""#,
    br#""s\u0072e""#,
];

const NUMBERS: &[&[u8]] = &[
    b"1e999999",
    b"-1e999999",
    b"123456789012345678901234567890123456789",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"1e-400",
    b"-0",
    b"0.0000000000000000000000000000001",
];

/// One mutation of `base`; `others` lend a request or an object to give twice.
fn mutate(rng: &mut Rng, base: &Base, others: &[Base]) -> Vec<u8> {
    let mut b = base.bytes.clone();
    let rounds = 1 + rng.below(2);
    for _ in 0..rounds {
        if b.is_empty() {
            break;
        }
        b = match rng.below(13) {
            0 => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
                b
            }
            1 => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
                b
            }
            2 => b[..rng.below(b.len())].to_vec(),
            3 => {
                let from = rng.below(b.len());
                let to = (from + 1 + rng.below(64)).min(b.len());
                let at = rng.below(b.len());
                let piece = b[from..to].to_vec();
                splice(&b, at, at, &piece)
            }
            4 => {
                let from = rng.below(b.len());
                let to = (from + 1 + rng.below(64)).min(b.len());
                splice(&b, from, to, b"")
            }
            5..=7 => {
                let values = string_values(&b);
                if values.is_empty() {
                    b
                } else {
                    let (from, to) = values[rng.below(values.len())];
                    let with: Vec<u8> = match rng.below(3) {
                        0 => {
                            let depth = [64, 127, 129, 1000, 20_000][rng.below(5)];
                            let (open, close) = if rng.below(2) == 0 {
                                (&b"["[..], &b"]"[..])
                            } else {
                                (&b"{\"a\":"[..], &b"}"[..])
                            };
                            let mut v = open.repeat(depth);
                            v.extend_from_slice(b"1");
                            v.extend_from_slice(&close.repeat(depth));
                            v
                        }
                        1 => NUMBERS[rng.below(NUMBERS.len())].to_vec(),
                        _ => ODD[rng.below(ODD.len())].to_vec(),
                    };
                    splice(&b, from, to, &with)
                }
            }
            8 => insert_after(&b, b"\"request\": {", b"\"uid\": \"0d5b8a1e-dup\", "),
            9 => {
                let other = &others[rng.below(others.len())];
                let request = other.value["request"].to_string();
                let end = b.iter().rposition(|&c| c == b'}').unwrap_or(b.len());
                splice(&b, end, end, format!(", \"request\": {request}").as_bytes())
            }
            10 => {
                let other = &others[rng.below(others.len())];
                let object = other.value["request"]["object"].to_string();
                insert_after(
                    &b,
                    b"\"request\": {",
                    format!("\"object\": {object}, ").as_bytes(),
                )
            }
            11 => {
                // A key given twice inside the Pod (last one wins in a lenient decoder).
                let containers =
                    base.value["request"]["object"]["spec"]["ephemeralContainers"].to_string();
                insert_after(
                    &b,
                    b"\"spec\": {",
                    format!("\"ephemeralContainers\": {containers}, ").as_bytes(),
                )
            }
            _ => {
                let odd = ODD[rng.below(ODD.len())];
                let values = string_values(&b);
                if values.is_empty() {
                    b
                } else {
                    let (from, _) = values[rng.below(values.len())];
                    // Inside the string, after its opening quote.
                    splice(&b, from + 1, from + 1, &odd[1..odd.len() - 1])
                }
            }
        };
    }
    b
}

/// What the engine makes of `bytes`: `None` when it refuses them (400), else the uid and
/// whether allowed.
fn expected(engine: &Engine, bytes: &[u8]) -> Option<(String, bool)> {
    let parsed = ParsedReview::from_slice(bytes).ok()?;
    let judgement = engine.judge(&parsed, Endpoint::Validate, None);
    Some((parsed.uid().to_owned(), judgement.response.allowed))
}

const SEED: u64 = 0x6b73_7079_5eed;
const CASES: usize = 2000;
const WORKERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_reviews_get_well_formed_answers_and_never_an_unearned_allow() {
    let policies = repo().join("policies");
    let engine = Arc::new(
        Engine::new(
            PolicySet::load_dir(&policies).expect("repository policies load"),
            Settings::default(),
        )
        .expect("engine"),
    );
    let bases = Arc::new(bases(&engine));
    assert!(bases.iter().any(|b| b.allowed) && bases.iter().any(|b| !b.allowed));
    let h = common::Harness::start_with(common::POLICIES, move |c| c.policies_dir = policies).await;
    let addr = h.server.addr;

    let mut tasks = Vec::new();
    for worker in 0..WORKERS {
        let (engine, bases, tls) = (engine.clone(), bases.clone(), h.tls.clone());
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut allowed_from_denied = 0usize;
            // Answers with a verdict, and refusals.
            let (mut judged, mut refused) = (0u64, 0u64);
            let mut conn: Option<HttpsConnection> = None;
            for case in (worker..CASES).step_by(WORKERS) {
                let mut rng = Rng::new(SEED ^ case as u64);
                let base = &bases[rng.below(bases.len())];
                let body = mutate(&mut rng, base, &bases);
                let want = expected(&engine, &body);
                if conn.as_ref().is_none_or(HttpsConnection::is_closed) {
                    conn = Some(
                        HttpsConnection::connect(addr, "localhost", &tls, HttpVersion::Http1)
                            .await
                            .expect("the server still accepts connections"),
                    );
                }
                let Some(c) = conn.as_mut() else { continue };
                let resp = match c.post_json("/validate", body.clone().into()).await {
                    Ok(resp) => resp,
                    Err(e) => {
                        failures.push(format!("case {case} ({}): no answer: {e}", base.name));
                        conn = None;
                        continue;
                    }
                };
                let status = resp.status().as_u16();
                let what = format!("case {case} ({}, status {status})", base.name);
                if status == 200 {
                    judged += 1;
                } else {
                    refused += 1;
                }
                match (status, &want) {
                    (400 | 413, None) => {}
                    (200, Some((uid, allowed))) => {
                        let answer: Value = match serde_json::from_slice(resp.body()) {
                            Ok(v) => v,
                            Err(e) => {
                                failures.push(format!("{what}: answer is not JSON: {e}"));
                                continue;
                            }
                        };
                        let r = &answer["response"];
                        if answer["kind"] != "AdmissionReview"
                            || answer["apiVersion"] != "admission.k8s.io/v1"
                            || r["uid"] != uid.as_str()
                            || r["allowed"] != *allowed
                        {
                            failures.push(format!(
                                "{what}: want uid {uid:?} allowed {allowed}, got {answer}"
                            ));
                        }
                        if *allowed && !base.allowed {
                            // Earned only by another request: strictly decodable, not the
                            // denied one.
                            match strictly(&body) {
                                Some(v) if v != base.value => allowed_from_denied += 1,
                                _ => failures.push(format!(
                                    "{what}: allowed, though strictly it is the denied request or no JSON: {}",
                                    String::from_utf8_lossy(&body[..body.len().min(400)])
                                )),
                            }
                        }
                        if strictly(&body).is_some_and(|v| v == base.value) && *allowed != base.allowed
                        {
                            failures.push(format!("{what}: the same document, another verdict"));
                        }
                    }
                    _ => failures.push(format!(
                        "{what}: the engine says {want:?}; body {}",
                        String::from_utf8_lossy(resp.body())
                    )),
                }
            }
            (failures, allowed_from_denied, judged, refused)
        }));
    }
    let mut failures = Vec::new();
    let mut allowed_from_denied = 0;
    let (mut judged, mut refused) = (0, 0);
    for t in tasks {
        let (f, a, j, r) = t.await.expect("worker");
        failures.extend(f);
        allowed_from_denied += a;
        judged += j;
        refused += r;
    }
    assert!(
        failures.is_empty(),
        "{} failures: {:#?}",
        failures.len(),
        &failures[..failures.len().min(8)]
    );
    eprintln!(
        "{judged} judged, {refused} refused; {allowed_from_denied} mutated denied requests became other, allowed requests"
    );
    // Every answer counted once, as what it was.
    let text = h.server.metrics().render();
    let sum = |name: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert_eq!(sum("kspy_reviews_total"), judged, "{text}");
    assert_eq!(sum("kspy_bad_requests_total"), refused, "{text}");
    assert_eq!(sum("kspy_internal_errors_total"), 0, "{text}");
    // Still serving.
    let (status, _) = h.post_fixture("/validate", "attach-allowed.json").await;
    assert_eq!(status, 200);
    let (status, _) = h.admin_get("/healthz").await;
    assert_eq!(status, 200);
    h.server.shutdown().await;
}
