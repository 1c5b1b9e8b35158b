//! The answer to a request that gets no verdict: an HTTP error whose body is a `metav1.Status`.
//!
//! The API server calls webhooks through its REST client, which turns an answer outside 2xx
//! into the error users see after `failed calling webhook "…": failed to call webhook:`. A
//! `Status` body gives that error its `message`; a text body is replaced by words chosen by
//! the status code alone ("the server rejected our request for an unknown reason" for a 400,
//! "the server responded with the status code 413 but did not return more information"), so
//! the reason kspy knows would reach nobody but kspy's own log.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;

/// The `metav1.StatusReason` for an HTTP status kspy answers with, as the API server names
/// them; `None` where Kubernetes has no name (501).
fn reason_of(status: StatusCode) -> Option<&'static str> {
    Some(match status {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::REQUEST_TIMEOUT => "Timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLarge",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
        StatusCode::INTERNAL_SERVER_ERROR => "InternalError",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        _ => return None,
    })
}

/// An HTTP `status` answer whose body is one line of JSON: a `Status` of `Failure` with
/// `message` (line breaks made spaces), `code` and `reason`.
pub(crate) fn error_status(status: StatusCode, message: String) -> Response {
    let body = Status {
        code: Some(i32::from(status.as_u16())),
        message: Some(message.replace(['\n', '\r'], " ")),
        reason: reason_of(status).map(str::to_owned),
        status: Some("Failure".to_owned()),
        ..Status::default()
    };
    // A Status of strings and a number always encodes; the fallback keeps the answer an error.
    let mut line = serde_json::to_vec(&body).unwrap_or_default();
    line.push(b'\n');
    (status, [(header::CONTENT_TYPE, "application/json")], line).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    /// The body of `response` as text.
    async fn body_text(response: Response) -> String {
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        String::from_utf8(body.to_vec()).expect("UTF-8")
    }

    #[tokio::test]
    async fn an_error_is_one_line_of_status_json() {
        let response = error_status(StatusCode::PAYLOAD_TOO_LARGE, "too\nbig".into());
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let text = body_text(response).await;
        assert!(
            text.ends_with("}\n") && text.matches('\n').count() == 1,
            "{text}"
        );
        let status: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(
            status,
            serde_json::json!({
                "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                "message": "too big", "reason": "RequestEntityTooLarge", "code": 413
            })
        );
        // No reason where Kubernetes has no name for the status.
        let text = body_text(error_status(StatusCode::NOT_IMPLEMENTED, "gzip".into())).await;
        let status: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert!(status.get("reason").is_none(), "{status}");
    }
}
