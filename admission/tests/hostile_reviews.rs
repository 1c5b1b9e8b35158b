//! Hostile review bodies, made by mutating every shipped fixture: the engine never panics,
//! never reads malformed JSON as a review, never turns a denial into an allow by a change of
//! type, reads a repeated member as the last one or not at all, and never lets the parts
//! nobody judges change an answer.
//!
//! The mutations come from a fixed seed, so a failure names a case that fails again. Each
//! assertion message carries the mutated body's first bytes and what was done to it.

mod fuzz;

use fuzz::json::{kind, pointers};
use fuzz::library::Library;
use fuzz::rng::Rng;
use kspy_admission::{Endpoint, Verdict};
use serde_json::{Value, json};

/// Mutated bodies per fixture, per kind of mutation.
const CASES_PER_FIXTURE: usize = 100;

/// What the typed decoding skips and no shipped policy reads.
const UNJUDGED: [&str; 4] = [
    "/request/object/metadata/managedFields",
    "/request/object/status",
    "/request/oldObject/metadata/managedFields",
    "/request/oldObject/status",
];

/// Parses and judges `body` at `endpoint` through the webhook's entry, with the Namespaces the
/// suites declare: `None` when the body is refused (the webhook's 400), else the verdict and
/// the answer sent back, parsed.
fn answer(lib: &Library, body: &[u8], endpoint: Endpoint) -> Option<(Verdict, Value)> {
    fuzz::library::answer(&lib.engine, body, endpoint, &|r| {
        lib.namespace_of(r).cloned()
    })
    .map(|a| (a.verdict, a.review))
}

/// Values of every kind but null, the likely and the hostile.
fn replacements() -> Vec<Value> {
    vec![
        json!(true),
        json!(false),
        json!(0),
        json!(-1),
        json!(1e300),
        json!(18446744073709551615u64),
        json!(""),
        json!("SYS_ADMIN"),
        json!("../../etc/shadow"),
        json!("registry.example.com.evil.io/x:latest"),
        json!("\u{0}\u{1f}\"\\"),
        json!([]),
        json!(["SYS_ADMIN"]),
        json!([{}]),
        json!({}),
        json!({"add": ["SYS_ADMIN"]}),
        json!({"privileged": true}),
    ]
}

/// Fails, naming the case, unless `body` was answered as `expected`.
fn same_answer(
    body: &[u8],
    what: &str,
    answer: Option<(Verdict, Value)>,
    expected: Option<&(Verdict, Value)>,
) {
    assert!(
        answer.as_ref() == expected,
        "{}",
        describe(
            body,
            &format!("{what}: answered {answer:?}, expected {expected:?}")
        )
    );
}

/// [`replacements`] and null: where a member may be absent, null is one more value.
fn replacements_and_null() -> Vec<Value> {
    let mut values = replacements();
    values.push(Value::Null);
    values
}

fn describe(body: &[u8], what: &str) -> String {
    let head = String::from_utf8_lossy(&body[..body.len().min(160)]);
    format!("{what}; body starts {head:?}")
}

/// Byte-level damage: truncation, a byte dropped, replaced or inserted, bytes appended, a
/// span repeated.
/// Whatever it makes, the engine does not panic, and what is not JSON is not a review.
#[test]
fn damaged_bytes_are_refused_or_judged_never_a_panic() {
    let lib = Library::load();
    let mut rng = Rng::new(0x6b73_7079_0001);
    let specials = b"{}[]\",:\\ 0123456789.eE+-tfnul\x00\x1f\x7f\xff\xc3";
    let (mut refused, mut judged) = (0, 0);
    for (name, body) in &lib.fixtures {
        for _ in 0..CASES_PER_FIXTURE {
            let mut b = body.clone();
            let at = rng.below(b.len());
            let what = match rng.below(6) {
                0 => {
                    b.truncate(at);
                    format!("{name}: truncated to {at} bytes")
                }
                1 => {
                    let gone = b.remove(at);
                    format!("{name}: byte {at} ({:?}) removed", gone as char)
                }
                2 => {
                    let c = *rng.pick(specials);
                    b[at] = c;
                    format!("{name}: byte {at} set to {:?}", c as char)
                }
                3 => {
                    let c = *rng.pick(specials);
                    b.insert(at, c);
                    format!("{name}: {:?} inserted at {at}", c as char)
                }
                4 => {
                    // After the closing brace: a second document, or anything else.
                    let tail = if rng.below(2) == 0 {
                        body.clone()
                    } else {
                        vec![*rng.pick(specials)]
                    };
                    b.extend_from_slice(&tail);
                    format!("{name}: {} bytes appended", tail.len())
                }
                _ => {
                    let len = 1 + rng.below(64);
                    let end = (at + len).min(b.len());
                    let span = b[at..end].to_vec();
                    b.splice(at..at, span);
                    format!("{name}: bytes {at}..{end} repeated")
                }
            };
            let is_json = serde_json::from_slice::<serde::de::IgnoredAny>(&b).is_ok();
            match answer(&lib, &b, Endpoint::Validate) {
                None => refused += 1,
                Some(_) => {
                    assert!(
                        is_json,
                        "{}",
                        describe(&b, &format!("not JSON, yet judged: {what}"))
                    );
                    judged += 1;
                }
            }
        }
    }
    // Both outcomes occur: the mutations reach past the envelope into judged reviews.
    assert!(
        refused > 0 && judged > 0,
        "refused {refused}, judged {judged}"
    );
}

/// A value swapped for one of another type, anywhere in a review that is denied, never makes
/// it allowed: the typed decoding refuses it (the webhook's 400), or it is still denied.
#[test]
fn a_change_of_type_never_turns_a_denial_into_an_allow() {
    let lib = Library::load();
    let mut rng = Rng::new(0x6b73_7079_0002);
    let replacements = replacements();
    let mut denied_fixtures = 0;
    for (name, body) in &lib.fixtures {
        for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
            let Some((Verdict::Denied, _)) = answer(&lib, body, endpoint) else {
                continue;
            };
            denied_fixtures += 1;
            let doc: Value = serde_json::from_slice(body).expect("fixture");
            let mut all = pointers(&doc);
            // The parts nobody judges have a test of their own (below).
            all.retain(|p| {
                doc.pointer(p).is_some_and(|v| !v.is_null())
                    && !UNJUDGED.iter().any(|u| p.starts_with(u))
            });
            for _ in 0..CASES_PER_FIXTURE {
                let pointer = rng.pick(&all);
                let original = doc.pointer(pointer).expect("pointer");
                let others: Vec<&Value> = replacements
                    .iter()
                    .filter(|r| kind(r) != kind(original))
                    .collect();
                let replacement = *rng.pick(&others);
                let mut mutated = doc.clone();
                *mutated.pointer_mut(pointer).expect("pointer") = replacement.clone();
                let b = serde_json::to_vec(&mutated).expect("encode");
                if let Some((verdict, _)) = answer(&lib, &b, endpoint) {
                    assert_eq!(
                        verdict,
                        Verdict::Denied,
                        "{}",
                        describe(
                            &b,
                            &format!(
                                "{name} at /{}: {pointer} set to {replacement}",
                                endpoint.as_str()
                            )
                        )
                    );
                }
            }
        }
    }
    assert!(
        denied_fixtures >= 4,
        "only {denied_fixtures} denied fixture/endpoint pairs"
    );
}

/// `managedFields` and `status`, in `object` and `oldObject`, are skipped by the typed
/// decoding and read by no shipped policy: whatever they hold, as long as the body is JSON,
/// the answer is the same (compared as parsed JSON).
#[test]
fn the_parts_nobody_judges_never_change_an_answer() {
    let lib = Library::load();
    let mut rng = Rng::new(0x6b73_7079_0003);
    let mut values = replacements_and_null();
    values.push(json!({"f:spec": {"f:containers": {"k:{\"name\":\"x\"}": {".": {}}}}}));
    let mut tried = 0;
    for (name, body) in &lib.fixtures {
        let doc: Value = serde_json::from_slice(body).expect("fixture");
        let mut targets: Vec<String> = UNJUDGED
            .iter()
            .filter(|r| doc.pointer(r).is_some())
            .map(|r| (*r).to_owned())
            .collect();
        for root in targets.clone() {
            let below = pointers(doc.pointer(&root).expect("root"));
            targets.extend(below.into_iter().map(|p| format!("{root}{p}")));
        }
        if targets.is_empty() {
            continue;
        }
        for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
            let baseline = answer(&lib, body, endpoint).expect("fixtures are reviews");
            for _ in 0..CASES_PER_FIXTURE / 2 {
                let pointer = rng.pick(&targets);
                let value = rng.pick(&values);
                let mut mutated = doc.clone();
                *mutated.pointer_mut(pointer).expect("pointer") = value.clone();
                let b = serde_json::to_vec(&mutated).expect("encode");
                let what = format!("{name} at /{}: {pointer} set to {value}", endpoint.as_str());
                same_answer(&b, &what, answer(&lib, &b, endpoint), Some(&baseline));
                tried += 1;
            }
        }
    }
    assert!(
        tried >= 100,
        "only {tried} cases reached the unjudged parts"
    );
}

/// A member repeated in an object with another value (JSON leaves the meaning to the reader)
/// is refused, or read as its last occurrence by every view the engine has of the review:
/// the typed decoding and the raw JSON CEL sees must not read two different reviews.
#[test]
fn a_repeated_member_is_refused_or_read_as_the_last_one() {
    let lib = Library::load();
    let mut rng = Rng::new(0x6b73_7079_0004);
    let values = replacements_and_null();
    const HOLE: &str = "kspy-hostile-test-hole";
    let (mut refused, mut read) = (0, 0);
    for (name, body) in &lib.fixtures {
        let doc: Value = serde_json::from_slice(body).expect("fixture");
        let mut objects = vec![String::new()];
        objects.extend(pointers(&doc));
        objects.retain(|p| {
            doc.pointer(p)
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
        });
        for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
            for _ in 0..CASES_PER_FIXTURE / 2 {
                // The request's own members a quarter of the time: the objects are there.
                let at = if rng.below(4) == 0 {
                    "/request"
                } else {
                    rng.pick(&objects).as_str()
                };
                let members = doc.pointer(at).and_then(Value::as_object).expect("object");
                let keys: Vec<&String> = members.keys().collect();
                let key = *rng.pick(&keys);
                let value = if rng.below(4) == 0 {
                    members[key].clone()
                } else {
                    rng.pick(&values).clone()
                };
                // The last reading: the member holds the repeated value.
                let mut last = doc.clone();
                last.pointer_mut(at).expect("object")[key] = value.clone();
                // The body: the object written out with the member twice.
                let mut holed = doc.clone();
                *holed.pointer_mut(at).expect("object") = json!(HOLE);
                let mut text = serde_json::to_string(members).expect("encode");
                text.pop();
                text.push_str(&format!(",{}:{value}}}", json!(key)));
                let b = serde_json::to_string(&holed)
                    .expect("encode")
                    .replacen(&json!(HOLE).to_string(), &text, 1)
                    .into_bytes();
                let what = format!(
                    "{name} at /{}: {at}/{key} repeated as {value}",
                    endpoint.as_str()
                );
                let Some(got) = answer(&lib, &b, endpoint) else {
                    refused += 1;
                    continue;
                };
                let expected = answer(&lib, &serde_json::to_vec(&last).expect("encode"), endpoint);
                same_answer(&b, &what, Some(got), expected.as_ref());
                read += 1;
            }
        }
    }
    assert!(refused > 0 && read > 0, "refused {refused}, read {read}");
}
