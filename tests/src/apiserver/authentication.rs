//! `authentication.k8s.io/v1`: `SelfSubjectReview`, which tells the caller who the API
//! server takes it for (`kubectl auth whoami`; kspy's `kspy.dev/requested-by` annotation).
//!
//! As `pkg/registry/authentication/selfsubjectreview/rest.go`: a create answered 201 with the
//! request's `status.userInfo` filled from the authenticated user, nothing stored. The
//! default RBAC (ClusterRole `system:basic-user`, bound to `system:authenticated`) lets every
//! authenticated user create one and the anonymous user none.

use axum::Extension;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::json_response;
use super::status::ApiError;
use crate::identity::Identity;

/// The group and version served here.
pub const GROUP_VERSION: &str = "authentication.k8s.io/v1";

/// The APIResourceList of `authentication.k8s.io/v1` as served.
pub fn resources() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": [
            {"name": "selfsubjectreviews", "singularName": "selfsubjectreview", "namespaced": false,
             "kind": "SelfSubjectReview", "verbs": ["create"]}
        ]
    })
}

/// `POST /apis/authentication.k8s.io/v1/selfsubjectreviews`.
pub async fn create_self_subject_review(
    Extension(user): Extension<Identity>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if user.is_anonymous() {
        return Err(ApiError {
            code: 403,
            reason: "Forbidden".into(),
            message: format!(
                "selfsubjectreviews.authentication.k8s.io is forbidden: User \"{}\" cannot \
                 create resource \"selfsubjectreviews\" in API group \"authentication.k8s.io\" \
                 at the cluster scope",
                user.name
            ),
            details: Some(json!({"group": "authentication.k8s.io", "kind": "selfsubjectreviews"})),
        });
    }
    // The body must decode as a SelfSubjectReview (its content is not used).
    let sent: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "SelfSubjectReview in version \"v1\" cannot be handled as a SelfSubjectReview: {e}"
        ))
    })?;
    if let Some(kind) = sent.get("kind").and_then(Value::as_str)
        && kind != "SelfSubjectReview"
    {
        return Err(ApiError::bad_request(format!(
            "the object provided is of kind {kind:?}, not SelfSubjectReview"
        )));
    }
    let mut user_info = json!({"username": user.name, "groups": user.reported_groups()});
    if !user.uid.is_empty() {
        user_info["uid"] = json!(user.uid);
    }
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "kind": "SelfSubjectReview",
            "apiVersion": GROUP_VERSION,
            "metadata": {"creationTimestamp": null},
            "status": {"userInfo": user_info}
        }),
        &[],
    ))
}
