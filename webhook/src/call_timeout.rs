//! The API server's own deadline for a webhook call, which it states in the URL:
//! `POST /validate?timeout=10s`, the webhook configuration's `timeoutSeconds`.
//!
//! The API server gives up on the call at that time and applies the webhook's failure policy:
//! with `failurePolicy: Ignore` the request then passes unjudged, and with `Fail` the user reads
//! "context deadline exceeded" instead of kspy's reason. So a review is decided within the
//! shorter of `--review-timeout` and nine tenths of the API server's timeout; the last tenth is
//! for connecting, sending the review and bringing the answer back, which the API server's
//! clock counts too. A `timeout` that is missing, zero or does not parse leaves
//! `--review-timeout` alone: only the API server sends one, and a client's odd query must not
//! shorten (or lengthen) anyone's deadline.

use std::fmt;
use std::time::Duration;

use crate::duration::parse_go_duration;

/// How long one review may take, and whether the API server's timeout set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReviewTimeout {
    /// The time from reading the request head to answering; past it the review is denied.
    pub(crate) limit: Duration,
    /// The API server's stated timeout, when nine tenths of it is below `--review-timeout`
    /// and so became [`limit`](Self::limit).
    pub(crate) set_by_api_server: Option<Duration>,
}

impl ReviewTimeout {
    /// The limit for a call to `configured` (`--review-timeout`) with the URL query `query`.
    pub(crate) fn for_call(configured: Duration, query: Option<&str>) -> ReviewTimeout {
        let stated = query.and_then(stated_timeout);
        // Nine tenths without multiplying: the caller writes the query, and a stated timeout
        // of 5000000000000000000s (which parses) times nine overflowed, and panicked.
        match stated.map(|t| t - t / 10) {
            Some(share) if share < configured => ReviewTimeout {
                limit: share,
                set_by_api_server: stated,
            },
            _ => ReviewTimeout {
                limit: configured,
                set_by_api_server: None,
            },
        }
    }
}

/// `9s`, or `900ms (the API server gives up after 1s, the webhook's timeoutSeconds)`: the
/// limit, and where it came from when it is not the flag's.
impl fmt::Display for ReviewTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.limit)?;
        if let Some(stated) = self.set_by_api_server {
            write!(
                f,
                " (the API server gives up after {stated:?}, the webhook's timeoutSeconds)"
            )?;
        }
        Ok(())
    }
}

/// The `timeout` parameter of a query string, when it is a positive Go duration.
fn stated_timeout(query: &str) -> Option<Duration> {
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("timeout="))?;
    parse_go_duration(value).filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NINE: Duration = Duration::from_secs(9);

    #[test]
    fn nine_tenths_of_a_shorter_api_server_timeout_is_the_limit() {
        let t = ReviewTimeout::for_call(NINE, Some("timeout=2s"));
        assert_eq!(t.limit, Duration::from_millis(1800));
        assert_eq!(t.set_by_api_server, Some(Duration::from_secs(2)));
        assert_eq!(
            t.to_string(),
            "1.8s (the API server gives up after 2s, the webhook's timeoutSeconds)"
        );
        // Found among other parameters too.
        let t = ReviewTimeout::for_call(NINE, Some("a=1&timeout=1s&b"));
        assert_eq!(t.limit, Duration::from_millis(900));
    }

    #[test]
    fn the_flag_stands_when_the_api_server_allows_as_long_or_says_nothing_usable() {
        for query in [
            None,
            Some(""),
            Some("timeout=10s"),
            Some("timeout=30s"),
            Some("timeout=0s"),
            Some("timeout=0"),
            Some("timeout=-1s"),
            Some("timeout=soon"),
            Some("timeout="),
            Some("xtimeout=1s"),
            Some("other=1"),
        ] {
            let t = ReviewTimeout::for_call(NINE, query);
            assert_eq!(
                t,
                ReviewTimeout {
                    limit: NINE,
                    set_by_api_server: None
                },
                "{query:?}"
            );
            assert_eq!(t.to_string(), "9s");
        }
        // 9/10 of 10 s is exactly the flag: the flag's own words.
        assert_eq!(
            ReviewTimeout::for_call(NINE, Some("timeout=10s")).set_by_api_server,
            None
        );
    }

    #[test]
    fn a_huge_stated_timeout_leaves_the_flag_and_does_not_overflow() {
        for query in [
            "timeout=5000000000000000000s",
            "timeout=18000000000000000000s",
            "timeout=5000000000000000h",
        ] {
            let t = ReviewTimeout::for_call(NINE, Some(query));
            assert_eq!(t.limit, NINE, "{query}");
            assert_eq!(t.set_by_api_server, None, "{query}");
        }
        // Nine tenths to the nanosecond where it matters.
        let t = ReviewTimeout::for_call(NINE, Some("timeout=1ns"));
        assert_eq!(t.limit, Duration::from_nanos(1));
        let t = ReviewTimeout::for_call(NINE, Some("timeout=3s"));
        assert_eq!(t.limit, Duration::from_millis(2700));
    }
}
