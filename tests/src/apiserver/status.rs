//! `metav1.Status` errors with the reason, code and message shapes of the real API server.
//!
//! Shapes follow `k8s.io/apimachinery/pkg/api/errors` (NewNotFound, NewAlreadyExists,
//! NewForbidden, NewInvalid, NewConflict, NewInternalError, ...) and
//! `k8s.io/apimachinery/pkg/util/validation/field` (the `field: Type: detail` strings).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An API error answered to the client as a `Status` object.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status code, also `status.code`.
    pub code: u16,
    /// `status.reason` (`NotFound`, `Invalid`, ...); empty when the real server leaves it out.
    pub reason: String,
    /// `status.message`.
    pub message: String,
    /// `status.details`, when the real server fills it.
    pub details: Option<Value>,
}

impl ApiError {
    /// A bare error with code, reason and message.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
        }
    }

    /// `pods "web" not found` (404 NotFound).
    pub fn not_found(resource: &str, name: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound".into(),
            message: format!("{resource} \"{name}\" not found"),
            details: Some(json!({"name": name, "kind": resource})),
        }
    }

    /// `the server could not find the requested resource` (404 for unknown paths).
    pub fn no_such_resource() -> Self {
        Self {
            code: 404,
            reason: "NotFound".into(),
            message: "the server could not find the requested resource".into(),
            details: Some(json!({})),
        }
    }

    /// `pods "web" already exists` (409 AlreadyExists).
    pub fn already_exists(resource: &str, name: &str) -> Self {
        Self {
            code: 409,
            reason: "AlreadyExists".into(),
            message: format!("{resource} \"{name}\" already exists"),
            details: Some(json!({"name": name, "kind": resource})),
        }
    }

    /// Optimistic-concurrency failure (409 Conflict).
    pub fn conflict(resource: &str, name: &str) -> Self {
        Self {
            code: 409,
            reason: "Conflict".into(),
            message: format!(
                "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
            details: Some(json!({"name": name, "kind": resource})),
        }
    }

    /// `apierrors.NewForbidden` for a core resource: `pods "web" is forbidden: WHY`, or
    /// `pods is forbidden: WHY` when the name is not known yet (a generateName create).
    pub fn forbidden(resource: &str, name: &str, why: impl std::fmt::Display) -> Self {
        let message = if name.is_empty() {
            format!("{resource} is forbidden: {why}")
        } else {
            format!("{resource} \"{name}\" is forbidden: {why}")
        };
        Self {
            code: 403,
            reason: "Forbidden".into(),
            message,
            details: Some(if name.is_empty() {
                json!({"group": "", "kind": resource})
            } else {
                json!({"name": name, "group": "", "kind": resource})
            }),
        }
    }

    /// RBAC denial (403 Forbidden), message as the RBAC authorizer words it.
    pub fn forbidden_rbac(
        user: &str,
        verb: &str,
        resource: &str,
        subresource: Option<&str>,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Self {
        let full = match subresource {
            Some(s) => format!("{resource}/{s}"),
            None => resource.to_string(),
        };
        // The harness serves one resource outside the core group: events.k8s.io Events.
        let group = if resource == "events" {
            "events.k8s.io"
        } else {
            ""
        };
        let qualified = if group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{group}")
        };
        let subject = match name {
            Some(n) => format!("{qualified} \"{n}\""),
            None => qualified,
        };
        let scope = match namespace {
            Some(ns) => format!(" in the namespace \"{ns}\""),
            None => " at the cluster scope".to_string(),
        };
        Self {
            code: 403,
            reason: "Forbidden".into(),
            message: format!(
                "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{full}\" in API group \"{group}\"{scope}"
            ),
            details: Some(match name {
                Some(n) => json!({"name": n, "group": group, "kind": resource}),
                None => json!({"group": group, "kind": resource}),
            }),
        }
    }

    /// RBAC denial of a non-resource request (403 Forbidden): `forbidden: User "x" cannot get
    /// path "/api"`, as `endpoints/handlers/responsewriters.forbiddenMessage` words it.
    pub fn forbidden_path(user: &str, verb: &str, path: &str) -> Self {
        Self {
            code: 403,
            reason: "Forbidden".into(),
            message: format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\""),
            details: Some(json!({})),
        }
    }

    /// 401 Unauthorized, as answered to a request without valid credentials.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 400 BadRequest with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    /// 415 UnsupportedMediaType for a PATCH with an unknown content type.
    pub fn unsupported_patch_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            ),
        )
    }

    /// `Internal error occurred: ...` (500 InternalError).
    pub fn internal(message: impl std::fmt::Display) -> Self {
        let message = message.to_string();
        Self {
            code: 500,
            reason: "InternalError".into(),
            message: format!("Internal error occurred: {message}"),
            details: Some(json!({"causes": [{"message": message}]})),
        }
    }

    /// 410 Expired for a watch from a resource version no longer in history.
    pub fn expired(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// 422 Invalid built from field errors: `Pod "web" is invalid: <errors>`.
    pub fn invalid(kind: &str, name: &str, errors: &[FieldError]) -> Self {
        Self::invalid_in_group(kind, "", name, errors)
    }

    /// 422 Invalid for a kind of an API group: `Event.events.k8s.io "x" is invalid: <errors>`.
    pub fn invalid_in_group(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Self {
        let joined = match errors {
            [one] => one.to_string(),
            many => format!(
                "[{}]",
                many.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| {
                // `StatusCause.field` is `omitempty`: an error at the empty path has none.
                let mut cause = json!({"reason": e.kind.cause_reason(), "message": e.body()});
                if !e.field.is_empty() {
                    cause["field"] = json!(e.field);
                }
                cause
            })
            .collect();
        Self {
            code: 422,
            reason: "Invalid".into(),
            message: if group.is_empty() {
                format!("{kind} \"{name}\" is invalid: {joined}")
            } else {
                format!("{kind}.{group} \"{name}\" is invalid: {joined}")
            },
            details: Some(if group.is_empty() {
                json!({"name": name, "kind": kind, "causes": causes})
            } else {
                json!({"name": name, "group": group, "kind": kind, "causes": causes})
            }),
        }
    }

    /// The `Status` object as JSON.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        });
        if !self.reason.is_empty() {
            status["reason"] = json!(self.reason);
        }
        if let Some(d) = &self.details {
            status["details"] = d.clone();
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = self.to_status().to_string();
        let mut resp = (code, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

/// An API error with the warnings recorded before it: the API server's warning recorder
/// writes each warning into the response headers as it is added, so a request that a
/// webhook warned about and a later step refused carries the warning with the refusal
/// (`apiserver/pkg/endpoints/filters/warning.go`).
#[derive(Debug, Clone)]
pub struct WarnedError {
    /// The refusal.
    pub error: ApiError,
    /// The warnings recorded before it, in order.
    pub warnings: Vec<String>,
}

impl WarnedError {
    /// `error` with `warnings`.
    pub fn new(error: ApiError, warnings: Vec<String>) -> Self {
        Self { error, warnings }
    }
}

impl From<ApiError> for WarnedError {
    fn from(error: ApiError) -> Self {
        Self::new(error, Vec::new())
    }
}

impl IntoResponse for WarnedError {
    fn into_response(self) -> Response {
        let code =
            StatusCode::from_u16(self.error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        super::json_response(code, &self.error.to_status(), &self.warnings)
    }
}

/// The success `Status` the real server returns for some deletes and on the attach error channel.
pub fn success_status() -> Value {
    json!({"metadata": {}, "status": "Success"})
}

/// Kind of a field error (`field.ErrorType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// `Required value`
    Required,
    /// `Duplicate value: "x"`
    Duplicate(String),
    /// `Not found: "x"`
    NotFound(String),
    /// `Forbidden: detail`
    Forbidden,
    /// `Invalid value: "x": detail`
    Invalid(String),
    /// `Invalid value: x: detail`: a bad value Go prints unquoted (`%v` of a bool or number,
    /// `%#v` of a struct), already rendered.
    InvalidUnquoted(String),
    /// `Unsupported value: "x": supported values: ...`
    NotSupported(String, Vec<String>),
}

impl FieldErrorKind {
    fn cause_reason(&self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Duplicate(_) => "FieldValueDuplicate",
            Self::NotFound(_) => "FieldValueNotFound",
            Self::Forbidden => "FieldValueForbidden",
            Self::Invalid(_) | Self::InvalidUnquoted(_) => "FieldValueInvalid",
            Self::NotSupported(..) => "FieldValueNotSupported",
        }
    }
}

/// One validation error (`field.Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field path, e.g. `spec.ephemeralContainers[0].name`.
    pub field: String,
    /// Error type and value.
    pub kind: FieldErrorKind,
    /// Free-form detail.
    pub detail: String,
}

impl FieldError {
    /// `Required value`.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::Required,
            detail: detail.into(),
        }
    }
    /// `Duplicate value: "v"`.
    pub fn duplicate(field: impl Into<String>, value: &str) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::Duplicate(value.into()),
            detail: String::new(),
        }
    }
    /// `Not found: "v"`.
    pub fn not_found(field: impl Into<String>, value: &str) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::NotFound(value.into()),
            detail: String::new(),
        }
    }
    /// `Forbidden: detail`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::Forbidden,
            detail: detail.into(),
        }
    }
    /// `Invalid value: "v": detail`.
    pub fn invalid(field: impl Into<String>, value: &str, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::Invalid(value.into()),
            detail: detail.into(),
        }
    }
    /// `Invalid value: v: detail` with `v` as Go prints a non-string bad value (`true`, `3`,
    /// `core.SecurityContext{…}`).
    pub fn invalid_unquoted(
        field: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::InvalidUnquoted(value.into()),
            detail: detail.into(),
        }
    }
    /// `Unsupported value: "v": supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::NotSupported(
                value.into(),
                supported.iter().map(|s| s.to_string()).collect(),
            ),
            detail: String::new(),
        }
    }

    /// The part after `field: ` (`field.Error.ErrorBody`).
    pub fn body(&self) -> String {
        let mut s = match &self.kind {
            FieldErrorKind::Required => "Required value".to_string(),
            FieldErrorKind::Duplicate(v) => format!("Duplicate value: {v:?}"),
            FieldErrorKind::NotFound(v) => format!("Not found: {v:?}"),
            FieldErrorKind::Forbidden => "Forbidden".to_string(),
            FieldErrorKind::Invalid(v) => format!("Invalid value: {v:?}"),
            FieldErrorKind::InvalidUnquoted(v) => format!("Invalid value: {v}"),
            FieldErrorKind::NotSupported(v, supported) => format!(
                "Unsupported value: {v:?}: supported values: {}",
                supported
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}
