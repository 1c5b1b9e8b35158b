//! A scriptable admission webhook over TLS, for testing the admission chain itself
//! (independently of kspy's webhook): every POST gets the AdmissionReview `response`
//! computed by a closure from the request.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::tls::{CertAuthority, TlsError};

/// Computes the `response` object (without `uid`, which is copied) from the `request`.
pub type Responder = Arc<dyn Fn(&Value) -> Value + Send + Sync>;

/// A running stub webhook; stops when dropped.
pub struct StubWebhook {
    /// `https://127.0.0.1:PORT`
    pub url: String,
    /// PEM of the CA that signed its certificate.
    pub ca_pem: String,
    /// Every AdmissionReview request received.
    pub received: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StubWebhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A key a responder may add to its response: the stub waits that many milliseconds
/// (asynchronously) before answering, and strips the key.
pub const DELAY_KEY: &str = "__delayMillis";

/// A key a responder may add to its response: an object whose fields replace those of the
/// AdmissionReview envelope (`apiVersion`, `kind`; a `null` removes the field), to answer
/// with a malformed review. The stub strips the key.
pub const ENVELOPE_KEY: &str = "__envelope";

/// A key a responder may add to its response: `{"status": CODE, "contentType": TYPE, "body":
/// TEXT}` makes the stub answer with that HTTP status, `Content-Type` (none when absent) and
/// body instead of an AdmissionReview, as a webhook failing outside admission does.
pub const HTTP_KEY: &str = "__http";

/// A response allowing the request.
pub fn allow() -> Value {
    json!({"allowed": true})
}

/// A response denying with `code` and `message`.
pub fn deny(code: u16, message: &str) -> Value {
    json!({"allowed": false, "status": {"code": code, "message": message, "reason": "Forbidden"}})
}

/// An allowing response carrying a JSON patch.
pub fn patch(ops: Value) -> Value {
    use base64::Engine;
    json!({"allowed": true, "patchType": "JSONPatch",
           "patch": base64::engine::general_purpose::STANDARD.encode(ops.to_string())})
}

/// The HTTP answer an [`HTTP_KEY`] value asks for.
fn raw_answer(http: &Value) -> axum::response::Response {
    let status = http
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = http
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.remove(axum::http::header::CONTENT_TYPE);
    if let Some(v) = http
        .get("contentType")
        .and_then(Value::as_str)
        .and_then(|t| axum::http::HeaderValue::from_str(t).ok())
    {
        headers.insert(axum::http::header::CONTENT_TYPE, v);
    }
    response
}

impl StubWebhook {
    /// Serves on 127.0.0.1:0 with a certificate from `ca` for `127.0.0.1` and `localhost`.
    pub async fn start(ca: &CertAuthority, responder: Responder) -> Result<Self, TlsError> {
        let cert = ca.issue_serving(&["127.0.0.1", "localhost"])?;
        let cfg = crate::tls::server_config(&cert, &[b"http/1.1"])?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| TlsError::Pem(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| TlsError::Pem(e.to_string()))?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let rec = received.clone();
        let handler = move |body: Bytes| {
            let responder = responder.clone();
            let rec = rec.clone();
            async move {
                let Ok(review) = serde_json::from_slice::<Value>(&body) else {
                    return (StatusCode::BAD_REQUEST, "not JSON").into_response();
                };
                let req = review.get("request").cloned().unwrap_or(Value::Null);
                rec.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(review.clone());
                let mut resp = responder(&req);
                if let Some(ms) = resp
                    .as_object_mut()
                    .and_then(|m| m.remove(DELAY_KEY))
                    .and_then(|v| v.as_u64())
                {
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                }
                if let Some(http) = resp.as_object_mut().and_then(|m| m.remove(HTTP_KEY)) {
                    return raw_answer(&http);
                }
                let envelope = resp.as_object_mut().and_then(|m| m.remove(ENVELOPE_KEY));
                resp["uid"] = req.get("uid").cloned().unwrap_or(Value::Null);
                let mut out = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp});
                if let (Some(Value::Object(fields)), Some(o)) = (envelope, out.as_object_mut()) {
                    for (k, v) in fields {
                        if v.is_null() {
                            o.remove(&k);
                        } else {
                            o.insert(k, v);
                        }
                    }
                }
                (StatusCode::OK, out.to_string()).into_response()
            }
        };
        let app = Router::new().fallback(post(handler));
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                        .await;
                });
            }
        });
        Ok(Self {
            url: format!("https://{addr}"),
            ca_pem: ca.cert_pem().to_string(),
            received,
            task,
        })
    }

    /// The AdmissionReviews received so far.
    pub fn received(&self) -> Vec<Value> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
