//! A minimal HTTPS client over one keep-alive connection (hyper + tokio-rustls), trusting only
//! the CA it is given. Used by `kspy-load` and by tests; other crates may use it to talk to an
//! in-process webhook.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Which HTTP version to speak (negotiated by ALPN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1 with keep-alive: one request at a time per connection.
    Http1,
    /// HTTP/2: many concurrent requests per connection.
    Http2,
}

/// A client failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server name is not a valid DNS name or IP address.
    #[error("invalid server name {0:?}")]
    ServerName(String),
    /// TCP connect or TLS handshake failed.
    #[error("connecting to {addr}")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The server did not negotiate the requested protocol.
    #[error("the server did not negotiate {0:?} by ALPN")]
    Alpn(HttpVersion),
    /// An HTTP-level failure.
    #[error("http")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("request")]
    Request(#[from] hyper::http::Error),
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One HTTPS connection.
pub struct HttpsConnection {
    sender: Sender,
    authority: String,
    peer_certificate: Option<Vec<u8>>,
}

impl std::fmt::Debug for HttpsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsConnection")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl HttpsConnection {
    /// Connects to `addr`, verifying the server certificate for `server_name` against the
    /// roots in `tls` (whose ALPN list is replaced to match `version`).
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        tls: &ClientConfig,
        version: HttpVersion,
    ) -> Result<Self, ClientError> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| ClientError::ServerName(server_name.to_owned()))?;
        let mut tls = tls.clone();
        tls.alpn_protocols = vec![match version {
            HttpVersion::Http1 => b"http/1.1".to_vec(),
            HttpVersion::Http2 => b"h2".to_vec(),
        }];
        let connect_err = |source| ClientError::Connect { addr, source };
        let tcp = TcpStream::connect(addr).await.map_err(connect_err)?;
        let _ = tcp.set_nodelay(true);
        let stream = TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .map_err(connect_err)?;
        let negotiated = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let peer_certificate = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|cert| cert.as_ref().to_vec());
        let io = TokioIo::new(stream);
        let sender = match version {
            HttpVersion::Http1 => {
                let (sender, conn) = http1::handshake(io).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Sender::H1(sender)
            }
            HttpVersion::Http2 => {
                if negotiated.as_deref() != Some(b"h2") {
                    return Err(ClientError::Alpn(version));
                }
                let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Sender::H2(sender)
            }
        };
        let authority = if server_name.parse::<std::net::IpAddr>().is_ok() {
            addr.to_string()
        } else {
            format!("{server_name}:{}", addr.port())
        };
        Ok(HttpsConnection {
            sender,
            authority,
            peer_certificate,
        })
    }

    /// Sends a request (the `Host` header is set for HTTP/1.1), returning status, headers and
    /// the whole body.
    pub async fn send(
        &mut self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<Bytes>, ClientError> {
        let response = match &mut self.sender {
            Sender::H1(sender) => {
                if !req.headers().contains_key(hyper::header::HOST) {
                    let host = hyper::header::HeaderValue::from_str(&self.authority)
                        .map_err(hyper::http::Error::from)?;
                    req.headers_mut().insert(hyper::header::HOST, host);
                }
                sender.ready().await?;
                sender.send_request(req).await?
            }
            Sender::H2(sender) => {
                let uri = format!(
                    "https://{}{}",
                    self.authority,
                    req.uri().path_and_query().map_or("/", |p| p.as_str())
                );
                *req.uri_mut() = uri.parse().map_err(hyper::http::Error::from)?;
                sender.ready().await?;
                sender.send_request(req).await?
            }
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Response::from_parts(parts, body))
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(
        &mut self,
        path: &str,
        body: Bytes,
    ) -> Result<Response<Bytes>, ClientError> {
        let req = Request::post(path)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        self.send(req).await
    }

    /// Another handle on the same connection, for HTTP/2 (whose requests multiplex);
    /// `None` for HTTP/1.1.
    pub fn try_clone(&self) -> Option<HttpsConnection> {
        match &self.sender {
            Sender::H1(_) => None,
            Sender::H2(s) => Some(HttpsConnection {
                sender: Sender::H2(s.clone()),
                authority: self.authority.clone(),
                peer_certificate: self.peer_certificate.clone(),
            }),
        }
    }

    /// The DER of the certificate the server presented in the handshake.
    pub fn peer_certificate(&self) -> Option<&[u8]> {
        self.peer_certificate.as_deref()
    }

    /// True once the server closed the connection.
    pub fn is_closed(&self) -> bool {
        match &self.sender {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }
}
