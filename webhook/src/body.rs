//! Reading a request body within its limits: at most `--max-body-bytes`, before the review
//! deadline, with each piece counted in the server-wide budget (`body_budget.rs`) as it
//! arrives.

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;
use tokio::time::Instant;

use crate::body_budget::{BodyRoom, NoRoom};

/// Why a body was not read whole.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// It went past `--max-body-bytes`.
    TooLarge,
    /// It went past its own `Content-Length` (hyper refuses that first), or the connection
    /// failed while it was read.
    Unreadable(String),
    /// The review deadline passed while waiting for the client to send the rest.
    NotArrived,
    /// A piece found no room in the budget: before the deadline when waiting, or at once.
    NoRoom,
}

/// Whether a piece that finds no room waits for some. An HTTP/2 stream must not: its unread
/// data would sit in the flow-control window its connection's other streams share, and they
/// could not finish their bodies and give room back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenFull {
    /// Wait until the deadline (HTTP/1.1: the client's bytes wait in its own connection).
    Wait,
    /// Refuse at once (HTTP/2).
    Refuse,
}

/// Reads `body` whole by `deadline`, at most `max` bytes, taking room in `room` for each
/// piece before keeping it. The room stays held by the caller until it is done with the body.
pub(crate) async fn read_body(
    mut body: Body,
    room: &mut BodyRoom,
    max: usize,
    when_full: WhenFull,
    deadline: Instant,
) -> Result<Bytes, BodyError> {
    let max = u64::try_from(max).unwrap_or(u64::MAX);
    let mut pieces: Vec<Bytes> = Vec::new();
    let mut received: u64 = 0;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::NotArrived),
            Ok(None) => break,
            // With its causes: "error reading a body from connection" alone says nothing of
            // what was wrong with it (a chunk size, a trailer over its limit).
            Ok(Some(Err(err))) => return Err(BodyError::Unreadable(kspy_certs::error_chain(&err))),
            Ok(Some(Ok(frame))) => frame,
        };
        // Trailers carry nothing kspy reads.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        let len = data.len() as u64;
        received = received.saturating_add(len);
        if received > max {
            return Err(BodyError::TooLarge);
        }
        let taken = match when_full {
            WhenFull::Refuse => room.try_take(len),
            WhenFull::Wait => match tokio::time::timeout_at(deadline, room.take(len)).await {
                Ok(taken) => taken,
                Err(_) => return Err(BodyError::NoRoom),
            },
        };
        match taken {
            Ok(()) => pieces.push(data),
            Err(NoRoom::Taken) => return Err(BodyError::NoRoom),
            Err(NoRoom::PastClaim) => {
                return Err(BodyError::Unreadable(
                    "the body is longer than its Content-Length".to_owned(),
                ));
            }
        }
    }
    Ok(match pieces.len() {
        0 => Bytes::new(),
        1 => pieces.swap_remove(0),
        _ => {
            let mut whole = Vec::with_capacity(usize::try_from(received).unwrap_or(0));
            for piece in &pieces {
                whole.extend_from_slice(piece);
            }
            Bytes::from(whole)
        }
    })
}
