//! The API server's warnings: `Warning: 299 - "text"` response headers (RFC 7234 §5.5), which
//! carry kspy's own `Warn`-mode policy verdicts, Pod Security's warn-level findings,
//! deprecations and any admission webhook's `warnings`. kube-rs drops response headers, so a
//! layer of the client's service stack ([`WarningLayer`]) reads them from every answer, and
//! kspy prints each distinct one on stderr as kubectl does: `Warning: TEXT`.
//!
//! Under `--dry-run=server` they belong to the verdict: the command [`Warnings::hold`]s them,
//! and the verdict takes them ([`Warnings::take_held`]); whatever no verdict took (a denied dry
//! run, `-q -o`) is printed on stderr when the command ends ([`Warnings::flush`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use crate::output::printable;

/// The warn-code the Kubernetes API server uses for every warning it sends ("miscellaneous
/// persistent warning"); client-go shows only these, and so does kspy.
const KUBERNETES_WARN_CODE: &str = "299";

/// Where the warnings of a command's requests go: printed at once on stderr, or held for a
/// dry run's verdict. Each distinct text is reported once, however many answers carry it (a
/// retried request, the probe and the real patch), as kubectl deduplicates them.
#[derive(Debug, Clone, Default)]
pub struct Warnings {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Every text seen, in order.
    seen: Vec<String>,
    /// `Some` while holding: the texts not printed yet.
    held: Option<Vec<String>>,
}

impl Warnings {
    /// The sink every client of this process reports to.
    pub fn process() -> &'static Warnings {
        static PROCESS: OnceLock<Warnings> = OnceLock::new();
        PROCESS.get_or_init(Warnings::default)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves the lists intact: keep using them.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on, keeps new warnings for [`Warnings::take_held`] instead of printing them.
    pub fn hold(&self) {
        let mut state = self.lock();
        if state.held.is_none() {
            state.held = Some(Vec::new());
        }
    }

    /// The warnings held and not taken yet, which the caller now reports (a verdict).
    pub fn take_held(&self) -> Vec<String> {
        self.lock()
            .held
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Prints on stderr the warnings held that no verdict took.
    pub fn flush(&self) {
        for text in self.take_held() {
            eprintln!("{}", line(&text));
        }
    }

    /// Reports `text`: held, or printed on stderr; nothing when it was reported before.
    fn report(&self, text: String) {
        let mut state = self.lock();
        if state.seen.contains(&text) {
            return;
        }
        state.seen.push(text.clone());
        match state.held.as_mut() {
            Some(held) => held.push(text),
            None => {
                drop(state);
                eprintln!("{}", line(&text));
            }
        }
    }
}

/// `Warning: TEXT` as kubectl prints it, control characters escaped: the text is the API
/// server's or a webhook's.
pub fn line(text: &str) -> String {
    format!("Warning: {}", printable(text))
}

/// The texts of the Kubernetes warnings (code 299) in one `Warning` header value: `299 -
/// "text"`, several separated by commas, the text a quoted string whose `\` escapes the next
/// character, each optionally followed by a quoted date. Parsing stops at the first malformed
/// entry, keeping those before it (as client-go does); empty texts are skipped.
pub fn parse_warning_header(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            break;
        }
        let Some((code, after)) = rest.split_once(' ') else {
            break;
        };
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            break;
        }
        let Some((agent, after)) = after.split_once(' ') else {
            break;
        };
        if agent.is_empty() {
            break;
        }
        let Some((text, after)) = quoted(after) else {
            break;
        };
        rest = after.trim_start_matches([' ', '\t']);
        // An optional warn-date, itself a quoted string.
        if rest.starts_with('"') {
            let Some((_, after)) = quoted(rest) else {
                break;
            };
            rest = after.trim_start_matches([' ', '\t']);
        }
        if code == KUBERNETES_WARN_CODE && !text.is_empty() {
            out.push(text);
        }
        match rest.strip_prefix(',') {
            Some(next) => rest = next,
            None if rest.is_empty() => break,
            // Anything else after an entry: malformed.
            None => break,
        }
    }
    out
}

/// The quoted string at the start of `s` (after `"`), unescaped, and what follows it; `None`
/// when `s` does not start with one or it is not closed.
fn quoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut text = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((text, &body[i + 1..])),
            '\\' => text.push(chars.next()?.1),
            c => text.push(c),
        }
    }
    None
}

/// The layer that reports the `Warning` headers of every answer to a [`Warnings`] sink.
#[derive(Debug, Clone)]
pub struct WarningLayer {
    /// Where the warnings go.
    pub sink: Warnings,
}

impl<S> tower::Layer<S> for WarningLayer {
    type Service = WarningService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WarningService {
            inner,
            sink: self.sink.clone(),
        }
    }
}

/// [`WarningLayer`] around a service.
#[derive(Debug, Clone)]
pub struct WarningService<S> {
    inner: S,
    sink: Warnings,
}

impl<S, Req, B> tower::Service<Req> for WarningService<S>
where
    S: tower::Service<Req, Response = http::Response<B>>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<B>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let answer = self.inner.call(req);
        let sink = self.sink.clone();
        Box::pin(async move {
            let response = answer.await?;
            // Error answers carry warnings too (a webhook may warn and another deny): the
            // headers are read whatever the status.
            for value in response.headers().get_all(http::header::WARNING) {
                // Header values may hold UTF-8 (obs-text); anything else is shown replaced.
                let value = String::from_utf8_lossy(value.as_bytes());
                for text in parse_warning_header(&value) {
                    sink.report(text);
                }
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, Service, ServiceExt};

    #[test]
    fn warning_headers_parse_as_the_api_server_writes_them() {
        assert_eq!(
            parse_warning_header(r#"299 - "policy e2e-warn: use busybox:1.36""#),
            vec!["policy e2e-warn: use busybox:1.36"]
        );
        // Quotes and backslashes escaped; commas inside the text are no separators.
        assert_eq!(
            parse_warning_header(
                r#"299 - "would violate PodSecurity \"restricted:latest\": a, b \\ c""#
            ),
            vec![r#"would violate PodSecurity "restricted:latest": a, b \ c"#]
        );
        // Several in one value, a date after one, another code skipped.
        assert_eq!(
            parse_warning_header(
                r#"299 - "one" "Sat, 25 Aug 2012 23:34:45 GMT", 199 proxy "not kubernetes", 299 kube-apiserver "two""#
            ),
            vec!["one", "two"]
        );
        // Malformed: stop there, keeping what came before.
        assert_eq!(
            parse_warning_header(r#"299 - "kept", 299 - unquoted"#),
            vec!["kept"]
        );
        assert_eq!(
            parse_warning_header(r#"299 - "unterminated"#),
            Vec::<String>::new()
        );
        assert_eq!(parse_warning_header(r#"2990 - "x""#), Vec::<String>::new());
        assert_eq!(parse_warning_header(r#"299 - """#), Vec::<String>::new());
        assert_eq!(parse_warning_header(""), Vec::<String>::new());
    }

    #[test]
    fn warnings_print_escaped_as_kubectl_prints_them() {
        assert_eq!(line("deprecated\u{1b}[2J"), "Warning: deprecated\\u{1b}[2J");
    }

    /// Every answer's `Warning` headers reach the sink, error answers' too, each text once.
    #[tokio::test]
    async fn the_layer_reports_each_distinct_warning_once() {
        let sink = Warnings::default();
        sink.hold();
        let inner = tower::service_fn(|status: u16| async move {
            let response = http::Response::builder()
                .status(status)
                .header("Warning", r#"299 - "policy e2e-warn: first""#)
                .header(
                    "warning",
                    r#"299 - "second", 299 - "policy e2e-warn: first""#,
                )
                .body(())
                .expect("response");
            Ok::<_, std::convert::Infallible>(response)
        });
        let mut service = WarningLayer { sink: sink.clone() }.layer(inner);
        for status in [200, 403, 200] {
            let answer = service
                .ready()
                .await
                .expect("ready")
                .call(status)
                .await
                .expect("answer");
            assert_eq!(answer.status().as_u16(), status);
        }
        assert_eq!(sink.take_held(), vec!["policy e2e-warn: first", "second"]);
        assert!(sink.take_held().is_empty(), "taken once");
    }
}
