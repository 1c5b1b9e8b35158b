//! The bytes of an AdmissionReview answer.
//!
//! kube's `AdmissionResponse` keeps the patch as `Vec<u8>` and serde renders that as a JSON
//! array of numbers (kube-rs issue #1781). The API server's field is Go `[]byte`, whose JSON
//! form is a base64 string, and that is what every client of the API (and the e2e API server)
//! decodes. So the answer is encoded here, field by field, with the patch in base64. The webhook
//! and `kspy policy eval` both answer through this one function.

use std::collections::HashMap;

use base64::Engine as _;
use kube::core::Status;
use kube::core::admission::AdmissionResponse;
use serde::Serialize;

/// `admission.k8s.io/v1`.
const API_VERSION: &str = "admission.k8s.io/v1";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Review<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: Response<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    uid: &'a str,
    allowed: bool,
    status: &'a Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    audit_annotations: &'a HashMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: &'a Option<Vec<String>>,
}

/// The AdmissionReview (v1) JSON answering with `response`: `uid`, `allowed`, `status`,
/// `patch` (base64) with `patchType: JSONPatch` when there is a patch, `auditAnnotations`,
/// `warnings`.
pub fn encode_review(response: &AdmissionResponse) -> Result<Vec<u8>, serde_json::Error> {
    let patch = response
        .patch
        .as_ref()
        .map(|p| base64::engine::general_purpose::STANDARD.encode(p));
    let patch_type = patch.as_ref().map(|_| "JSONPatch");
    serde_json::to_vec(&Review {
        api_version: API_VERSION,
        kind: "AdmissionReview",
        response: Response {
            uid: &response.uid,
            allowed: response.allowed,
            status: &response.result,
            patch,
            patch_type,
            audit_annotations: &response.audit_annotations,
            warnings: &response.warnings,
        },
    })
}

/// `json` without the white space between tokens, every key in its place: how the API server
/// sends a review (Go field order, which `kspy-webhook` relies on to find `uid` early), made
/// from an indented fixture. `json` must be valid JSON; nothing is checked.
pub fn compact_json(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if !b.is_ascii_whitespace() {
            in_string = b == b'"';
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn patch_is_base64_with_its_type_and_empty_fields_are_left_out() {
        let mut r = AdmissionResponse::invalid("x");
        r.uid = "u-1".into();
        r.allowed = true;
        r.result = Status::default();
        let plain: Value =
            serde_json::from_slice(&encode_review(&r).expect("encode")).expect("json");
        assert_eq!(
            plain,
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                   "response": {"uid": "u-1", "allowed": true, "status": {}}})
        );

        let patch: json_patch::Patch =
            serde_json::from_value(json!([{"op": "add", "path": "/a", "value": 1}]))
                .expect("patch");
        let mut r = r.with_patch(patch).expect("with_patch");
        r.warnings = Some(vec!["careful".into()]);
        r.audit_annotations.insert("policies".into(), "p".into());
        let v: Value = serde_json::from_slice(&encode_review(&r).expect("encode")).expect("json");
        let resp = &v["response"];
        assert_eq!(resp["patchType"], "JSONPatch");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(resp["patch"].as_str().expect("patch is a string"))
            .expect("base64");
        assert_eq!(decoded, br#"[{"op":"add","path":"/a","value":1}]"#);
        assert_eq!(resp["warnings"], json!(["careful"]));
        assert_eq!(resp["auditAnnotations"], json!({"policies": "p"}));
    }

    #[test]
    fn denial_status_is_kept() {
        let mut r = AdmissionResponse::invalid("nope").deny("no SYS_ADMIN for you");
        r.result = Status::failure("no SYS_ADMIN for you", "Forbidden").with_code(403);
        let v: Value = serde_json::from_slice(&encode_review(&r).expect("encode")).expect("json");
        assert_eq!(v["response"]["allowed"], false);
        assert_eq!(v["response"]["status"]["code"], 403);
        assert_eq!(v["response"]["status"]["message"], "no SYS_ADMIN for you");
        assert_eq!(v["response"]["status"]["reason"], "Forbidden");
    }

    #[test]
    fn compacting_keeps_strings_and_key_order() {
        let pretty = br#"{
  "z" : [1, 2],
  "a": "x \" y\\",  "m" : { "k": "tab\there" }
}"#;
        let compact = compact_json(pretty);
        assert_eq!(
            std::str::from_utf8(&compact).unwrap(),
            r#"{"z":[1,2],"a":"x \" y\\","m":{"k":"tab\there"}}"#
        );
        let a: serde_json::Value = serde_json::from_slice(pretty).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&compact).unwrap();
        assert_eq!(a, b);
    }
}
