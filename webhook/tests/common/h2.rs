//! HTTP/2 by hand, frame by frame, for what a well-behaved client library will not do:
//! open streams and send nothing more, leave windows shut, ignore pings.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::client::TlsStream;

use super::{Harness, raw_tls};

/// A TLS stream to the webhook.
pub type Stream = TlsStream<tokio::net::TcpStream>;

/// Frame types and flags used here (RFC 9113, section 6).
pub const HEADERS: u8 = 1;
pub const SETTINGS: u8 = 4;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const ACK: u8 = 1;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// An HTTP/2 connection by hand: ALPN `h2`, the client preface and empty SETTINGS.
pub async fn peer(h: &Harness) -> Stream {
    let roots = super::ca_roots(&[&h.certs.ca_cert_pem]);
    let tls = kspy_webhook::tls::client_config(roots, &[b"h2"]).expect("client config");
    let mut stream = raw_tls(h.server.addr, &tls).await;
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    send_frame(&mut stream, SETTINGS, 0, &[]).await;
    stream
}

/// Sends a frame on the connection itself (stream 0).
pub async fn send_frame(stream: &mut Stream, kind: u8, flags: u8, payload: &[u8]) {
    send_frame_on(stream, 0, kind, flags, payload).await;
}

/// Sends a frame on stream `id`.
pub async fn send_frame_on(stream: &mut Stream, id: u32, kind: u8, flags: u8, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("short").to_be_bytes();
    let id = id.to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags];
    frame.extend_from_slice(&id);
    frame.extend_from_slice(payload);
    stream.write_all(&frame).await.expect("write frame");
    stream.flush().await.expect("flush");
}

/// The next frame's type, flags and payload; `None` once the server closed.
pub async fn next_frame(stream: &mut Stream) -> Option<(u8, u8, Vec<u8>)> {
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.ok()?;
    Some((head[3], head[4], payload))
}

/// The header block of a request to `path` on `localhost` (`POST` with a JSON content type,
/// or `GET`), in HPACK without indexing or Huffman coding.
pub fn request_headers(post: bool, path: &str) -> Vec<u8> {
    let short = |s: &str| {
        u8::try_from(s.len())
            .ok()
            .filter(|&n| n < 127)
            .expect("short")
    };
    // :method POST or GET (static table 3 or 2), :scheme https (7).
    let mut block = vec![if post { 0x83 } else { 0x82 }, 0x87];
    // :path (4) and :authority (1), literal values without indexing.
    block.extend_from_slice(&[0x04, short(path)]);
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x01, short("localhost")]);
    block.extend_from_slice(b"localhost");
    if post {
        // content-type (31: 15 in the 4-bit prefix, then 16).
        let json = "application/json";
        block.extend_from_slice(&[0x0f, 0x10, short(json)]);
        block.extend_from_slice(json.as_bytes());
    }
    block
}
