//! rustls configurations: TLS 1.2 and 1.3 only, the `ring` provider only, ALPN `h2` and
//! `http/1.1`. The API server offers only `http/1.1` to admission webhooks (kubernetes#82090,
//! so that its requests spread over the replicas; loopback URLs may use HTTP/2 since 1.30);
//! other clients, such as `kspy-load --http2`, may use `h2`. With `--client-ca` the server
//! requires a client certificate ([`server_config`]).

use std::sync::Arc;

use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, ResolvesServerCert};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server configuration, with certificates from `resolver` (typically a
/// [`kspy_certs::ReloadingResolver`]) and, when `client_verifier` is given (typically a
/// [`kspy_certs::ReloadingClientVerifier`]), a client certificate required of every client.
///
/// With client certificates required, sessions are never resumed: a resumed TLS session
/// carries the client certificate verified when it was first established and is not checked
/// again, so a client whose CA was just removed from `--client-ca` could go on resuming
/// until its session expired. The API server keeps its connections open (HTTP/1.1
/// keep-alive), so a full handshake is needed only for a new connection.
pub fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    client_verifier: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<ServerConfig, rustls::Error> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let mut config = match client_verifier {
        None => builder.with_no_client_auth().with_cert_resolver(resolver),
        Some(verifier) => {
            let mut config = builder
                .with_client_cert_verifier(verifier)
                .with_cert_resolver(resolver);
            config.session_storage = Arc::new(NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
            config
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A client configuration trusting only `roots`, offering the given ALPN protocols (for
/// example `[b"http/1.1"]` or `[b"h2"]`). Used by `kspy-load` and the tests.
pub fn client_config(roots: RootCertStore, alpn: &[&[u8]]) -> Result<ClientConfig, rustls::Error> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
