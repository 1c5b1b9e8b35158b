//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge
//! patch, selected by Content-Type as the API server does (`apiserver/pkg/endpoints/handlers/patch.go`).

use serde_json::{Value, json};

use super::status::ApiError;
use super::strategic;

/// The patch types the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    Strategic,
}

impl PatchKind {
    /// Picks the patch type from a Content-Type header; 415 for anything else.
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        let base = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match base.as_str() {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            _ => Err(ApiError::unsupported_patch_type(ct)),
        }
    }

    /// The media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Json => "application/json-patch+json",
            Self::Merge => "application/merge-patch+json",
            Self::Strategic => "application/strategic-merge-patch+json",
        }
    }
}

/// A JSON patch whose operation fails (a missing path, a failed `test`): `applyJSPatch`
/// answers `NewGenericServerResponse(422, "", GroupResource{}, "", err, 0, false)`, which
/// carries the generic message only — empty details, no causes (those come only with
/// `isUnexpectedResponse`), the library's own error text nowhere.
fn rejected() -> ApiError {
    ApiError {
        code: 422,
        reason: "Invalid".into(),
        message: "the server rejected our request due to an error in our request".into(),
        details: Some(json!({})),
    }
}

/// A strategic merge patch the merge refused. `interpretStrategicMergePatchError` gives 400
/// or 422 only to the mergepatch sentinel errors (bad JSON document, bad `$setElementOrder`,
/// `$retainKeys` or primitive-list formats, lists of lists); every error this
/// implementation reports (a missing merge key, an unknown `$patch`, a list element that is
/// not a map) is a plain `fmt.Errorf` there, returned as is, and a non-Status error is
/// answered by `ErrorToAPIStatus` as 500 with no reason and the error text as message.
fn strategic_failed(err: strategic::StrategicError) -> ApiError {
    ApiError::new(500, "", err.to_string())
}

/// Applies a patch body to `original`.
pub fn apply(kind: PatchKind, original: &Value, body: &[u8]) -> Result<Value, ApiError> {
    match kind {
        PatchKind::Json => {
            let p: json_patch::Patch =
                serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let mut doc = original.clone();
            json_patch::patch(&mut doc, &p).map_err(|_| rejected())?;
            Ok(doc)
        }
        PatchKind::Merge => {
            let p: Value =
                serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let mut doc = original.clone();
            json_patch::merge(&mut doc, &p);
            Ok(doc)
        }
        PatchKind::Strategic => {
            let p: Value =
                serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            // The patch is decoded into a map[string]interface{} first: anything else is a
            // decoding error, 400 (strategicPatchObject).
            if !p.is_object() {
                return Err(ApiError::bad_request(format!(
                    "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                    go_json_type(&p)
                )));
            }
            strategic::apply(original, &p).map_err(strategic_failed)
        }
    }
}

/// The name encoding/json gives a JSON value's type in its unmarshal errors.
pub(crate) fn go_json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(
            PatchKind::from_content_type("application/json-patch+json").unwrap(),
            PatchKind::Json
        );
        assert_eq!(
            PatchKind::from_content_type("application/strategic-merge-patch+json; charset=utf-8")
                .unwrap(),
            PatchKind::Strategic
        );
        assert_eq!(
            PatchKind::from_content_type("application/json")
                .unwrap_err()
                .code,
            415
        );
    }

    #[test]
    fn json_and_merge_patches() {
        let doc = json!({"spec": {"ephemeralContainers": [{"name": "a"}]}});
        let out = apply(
            PatchKind::Json,
            &doc,
            br#"[{"op":"add","path":"/spec/ephemeralContainers/-","value":{"name":"b"}}]"#,
        )
        .unwrap();
        assert_eq!(out["spec"]["ephemeralContainers"][1]["name"], "b");
        let err = apply(
            PatchKind::Json,
            &json!({"spec": {}}),
            br#"[{"op":"add","path":"/spec/ephemeralContainers/-","value":{}}]"#,
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
        // Merge patch replaces lists wholesale.
        let out = apply(
            PatchKind::Merge,
            &doc,
            br#"{"spec":{"ephemeralContainers":[{"name":"b"}]}}"#,
        )
        .unwrap();
        assert_eq!(out["spec"]["ephemeralContainers"], json!([{"name": "b"}]));
        assert_eq!(
            apply(PatchKind::Merge, &doc, b"{nope").unwrap_err().code,
            400
        );
    }
}
