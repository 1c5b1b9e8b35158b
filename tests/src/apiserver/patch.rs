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

fn rejected(err: impl std::fmt::Display) -> ApiError {
    ApiError {
        code: 422,
        reason: "Invalid".into(),
        message: "the server rejected our request due to an error in our request".into(),
        details: Some(
            json!({"causes": [{"reason": "UnexpectedServerResponse", "message": err.to_string()}]}),
        ),
    }
}

/// Applies a patch body to `original`.
pub fn apply(kind: PatchKind, original: &Value, body: &[u8]) -> Result<Value, ApiError> {
    match kind {
        PatchKind::Json => {
            let p: json_patch::Patch =
                serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let mut doc = original.clone();
            json_patch::patch(&mut doc, &p).map_err(rejected)?;
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
            strategic::apply(original, &p).map_err(|e| ApiError::bad_request(e.to_string()))
        }
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
