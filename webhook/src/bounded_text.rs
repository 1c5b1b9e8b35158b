//! Text a client sent, bounded for log lines and span attributes.
//!
//! Whoever reaches the webhook port (any pod, unless `--client-ca` or a NetworkPolicy says
//! otherwise) chooses a review's uid, username, namespace, pod and container names, and what
//! a 400's message quotes, up to `--max-body-bytes`. Logged whole, a megabyte of username made
//! a megabyte line: container runtimes split lines over 16 KiB into pieces a log collector may
//! take for lines of their own (the username's tail then forges a record), and twenty such
//! reviews took 100 MiB of logs. Recorded whole on the review's span, each such value was held
//! until the span was exported, 5 MiB a review for up to 5 s with a working collector: twenty
//! reviews took the RSS from 43 to 185 MiB, past the Deployment's 128 Mi limit. The answer to
//! the client still carries its values whole.

use std::borrow::Cow;

/// Most bytes logged of one identifier a client sent (uid, user, namespace, pod, action):
/// Kubernetes names are at most 253 bytes, a service account's username about 340.
pub(crate) const FIELD_BYTES: usize = 512;

/// Most bytes logged of a list or message built from what a client sent (the debug
/// containers' names, a 400's message quoting the body).
pub(crate) const MESSAGE_BYTES: usize = 2048;

/// `text` itself when it has at most `limit` bytes; otherwise its first `limit` bytes or
/// fewer (whole characters), then `… (N bytes in all)`.
pub(crate) fn bounded(text: &str, limit: usize) -> Cow<'_, str> {
    if text.len() <= limit {
        return Cow::Borrowed(text);
    }
    Cow::Owned(format!(
        "{}… ({} bytes in all)",
        prefix(text, limit),
        text.len()
    ))
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary,
/// unmarked.
pub(crate) fn prefix(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_and_long_text_is_cut_on_a_character_boundary() {
        assert!(matches!(bounded("alice", 5), Cow::Borrowed("alice")));
        assert_eq!(bounded("alice", 3), "ali… (5 bytes in all)");
        // 'é' is two bytes: the cut does not split it.
        assert_eq!(bounded("aéb", 2), "a… (4 bytes in all)");
        assert_eq!(bounded("", 0), "");
    }
}
