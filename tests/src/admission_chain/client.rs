//! The HTTPS call to one webhook, like the API server's webhook client: POST to the URL with
//! `?timeout=Ns` appended, trusting only `caBundle`, one deadline for the whole exchange.
//! Errors are worded like Go's (`Post "URL": dial tcp ...: connect: connection refused`,
//! `context deadline exceeded`, `x509: certificate signed by unknown authority`).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use tokio::net::TcpStream;

/// What went wrong calling a webhook; the Display is the Go-style reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CallError(pub String);

/// The URL actually called: the webhook URL with `timeout=Ns` added to the query.
pub fn call_url(url: &str, timeout: Duration) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}timeout={}s", timeout.as_secs())
}

fn tls_config(ca: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = ca {
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
            let c = c.map_err(|e| format!("unable to load root certificates: {e}"))?;
            roots
                .add(c)
                .map_err(|e| format!("unable to load root certificates: {e}"))?;
        }
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

fn tls_error_text(e: &std::io::Error) -> String {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
            "tls: failed to verify certificate: x509: certificate signed by unknown authority".into()
        }
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
        | Some(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })) => {
            "tls: failed to verify certificate: x509: certificate is not valid for the requested name".into()
        }
        Some(other) => format!("tls: {other}"),
        None => e.to_string(),
    }
}

/// A webhook's HTTP answer: status, `Content-Type` (when sent) and body.
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

async fn exchange(url: &str, ca: Option<&[u8]>, body: Vec<u8>) -> Result<Answer, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("parse {url:?}: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "unsupported protocol scheme {:?}",
            uri.scheme_str().unwrap_or("")
        ));
    }
    let host = uri
        .host()
        .ok_or("missing host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
                _ => e.to_string(),
            };
            format!("dial tcp {host}:{port}: {why}")
        })?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(ca)?));
    let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| tls_error_text(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let req = hyper::Request::post(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::ACCEPT, "application/json, */*")
        .header(hyper::header::USER_AGENT, "kube-apiserver-admission")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Answer {
        status,
        content_type,
        body: bytes.to_vec(),
    })
}

/// How much of a body that is not a `Status` the REST client keeps
/// (`maxUnstructuredResponseTextBytes`).
const MAX_UNSTRUCTURED_BYTES: usize = 2048;

/// The error the API server's REST client makes of a webhook's answer outside 2xx
/// (`rest.Request.transformResponse` and `Result.Error`): a JSON body holding a
/// `metav1.Status` with `status: Failure` gives its message; anything else is worded by
/// `errors.NewGenericServerResponse` from the status code alone, and only 403, 406, 415 and
/// the 5xx codes but 503 and 504 keep the body's text — trimmed and cut to 2048 bytes when it
/// is `text/*` or untyped, `unknown` otherwise. So a 400 or 413 with a plain-text reason
/// reaches the user without it.
fn unexpected_answer(answer: &Answer) -> String {
    let media = answer.content_type.as_deref().map(|t| {
        t.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    // No Content-Type: the client's own (JSON) decodes it, and it counts as text.
    if matches!(media.as_deref(), None | Some("application/json"))
        && let Ok(status) = serde_json::from_slice::<serde_json::Value>(&answer.body)
        && status.get("kind").and_then(serde_json::Value::as_str) == Some("Status")
        && status.get("status").and_then(serde_json::Value::as_str) == Some("Failure")
    {
        return status
            .get("message")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string();
    }
    let server_message = match media.as_deref() {
        None => {
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(MAX_UNSTRUCTURED_BYTES)])
                .trim()
                .to_string()
        }
        Some(m) if m.starts_with("text/") => {
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(MAX_UNSTRUCTURED_BYTES)])
                .trim()
                .to_string()
        }
        Some(_) => "unknown".to_string(),
    };
    let code = answer.status;
    match code {
        409 => "the server reported a conflict".into(),
        404 => "the server could not find the requested resource".into(),
        400 => "the server rejected our request for an unknown reason".into(),
        401 => "the server has asked for the client to provide credentials".into(),
        403 | 415 => server_message,
        406 if server_message.is_empty() || server_message == "unknown" => {
            "the server was unable to respond with a content type that the client supports".into()
        }
        406 => server_message,
        405 => "the server does not allow this method on the requested resource".into(),
        422 => "the server rejected our request due to an error in our request".into(),
        503 => "the server is currently unable to handle the request".into(),
        504 => "the server was unable to return a response in the time allotted, but may still be processing the request".into(),
        429 => "the server has received too many requests and has asked us to try again later".into(),
        500.. => format!(
            "an error on the server ({server_message:?}) has prevented the request from succeeding"
        ),
        _ => format!(
            "the server responded with the status code {code} but did not return more information"
        ),
    }
}

/// POSTs `body` to the webhook and returns the response body of a 2xx answer.
pub async fn post_review(
    url: &str,
    ca: Option<&[u8]>,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, CallError> {
    let full = call_url(url, timeout);
    match tokio::time::timeout(timeout, exchange(&full, ca, body)).await {
        Err(_) => Err(CallError(format!(
            "failed to call webhook: Post {full:?}: context deadline exceeded"
        ))),
        Ok(Err(e)) => Err(CallError(format!(
            "failed to call webhook: Post {full:?}: {e}"
        ))),
        Ok(Ok(answer)) if (200..300).contains(&answer.status) => Ok(answer.body),
        Ok(Ok(answer)) => Err(CallError(format!(
            "failed to call webhook: {}",
            unexpected_answer(&answer)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_in_query() {
        assert_eq!(
            call_url("https://h/mutate", Duration::from_secs(10)),
            "https://h/mutate?timeout=10s"
        );
        assert_eq!(
            call_url("https://h/m?x=1", Duration::from_secs(3)),
            "https://h/m?x=1&timeout=3s"
        );
    }

    #[tokio::test]
    async fn refused_connection_wording() {
        // Port 1 (tcpmux) is privileged and never listened on: certainly refused, unlike a
        // port bound and released here, which another test may take meanwhile.
        let port = 1;
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "something listens on 127.0.0.1:{port}"
        );
        let err = post_review(
            &format!("https://127.0.0.1:{port}/v"),
            None,
            b"{}".to_vec(),
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "failed to call webhook: Post \"https://127.0.0.1:{port}/v?timeout=2s\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            )
        );
    }
}
