//! The floor server: the webhook's TLS and HTTP stack (same rustls configuration, same accept
//! loop, HTTP/1.1 and HTTP/2) answering every request with one constant "allowed"
//! AdmissionReview, without parsing anything. What `kspy-load` measures it against tells how
//! much the decision itself costs on top of transport.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use kspy_certs::ReloadingResolver;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::{DEFAULT_SHUTDOWN_GRACE, TlsFiles};
use crate::error::WebhookError;

/// The constant answer.
pub const FLOOR_RESPONSE: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"00000000-0000-0000-0000-000000000000","allowed":true,"status":{}}}"#;

/// A running floor server.
#[derive(Debug)]
pub struct FloorServer {
    /// The address bound.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl FloorServer {
    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops (it only stops through [`FloorServer::shutdown`]).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Starts a floor server on `addr` with the certificate and key in `tls`.
pub async fn start_floor(addr: SocketAddr, tls: &TlsFiles) -> Result<FloorServer, WebhookError> {
    let resolver = Arc::new(ReloadingResolver::load(&tls.cert, &tls.key)?);
    let acceptor = TlsAcceptor::from(Arc::new(crate::tls::server_config(resolver, None)?));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|error| WebhookError::Bind {
            addr,
            flag: "--addr",
            error,
        })?;
    let addr = listener.local_addr().map_err(|error| WebhookError::Io {
        context: "reading the bound address".into(),
        error,
    })?;
    let body = Bytes::from_static(FLOOR_RESPONSE.as_bytes());
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let body = body.clone();
        async move {
            // Read (and drop) the body so the connection stays usable; nothing is parsed.
            let _ = req.into_body().collect().await;
            let mut response = Response::new(Full::new(body));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            Ok::<_, Infallible>(response)
        }
    });
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(crate::serve::serve(
        listener,
        acceptor,
        service,
        stop_rx,
        DEFAULT_SHUTDOWN_GRACE,
        crate::serve::ConnectionLimits::default(),
        None,
    ));
    Ok(FloorServer { addr, stop, task })
}
