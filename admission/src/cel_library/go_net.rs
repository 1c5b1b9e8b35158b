//! CIDR prefixes as Kubernetes' CEL reads them: Go's `netip.ParsePrefix`.
//!
//! kube-cel 0.8 reads a prefix with the `ipnet` crate, which takes a prefix length with a
//! leading zero (`10.0.0.0/08`) and octets with leading zeros (`010.0.0.0/8`, read as
//! decimal). Go refuses both (`bad bits after slash: "08"`; `IPv4 field has octet with leading
//! zero`), so in Kubernetes `isCIDR('10.0.0.0/08')` is false and `cidr('10.0.0.0/08')` fails.
//! Here a prefix is first checked as Go checks it ([`go_prefix_problem`]); what passes is left
//! to kube-cel's functions, which check the range of the length and refuse IPv4-mapped IPv6
//! as Kubernetes does. Addresses alone (`ip`, `isIP`, `containsIP`) need nothing: kube-cel
//! reads them with Rust's `IpAddr`, which refuses leading zeros in an octet as Go does.

use std::sync::Arc;

use kube_cel::cel::extractors::{Arguments, This};
use kube_cel::cel::{FunctionContext, ResolveResult, Value};

use super::{kube_cel_call, value_type};

/// Why Go's `netip.ParsePrefix` refuses `s`, as its error words it; `None` when the syntax is
/// Go's (the length may still be out of range, which kube-cel's own parsing refuses).
pub(super) fn go_prefix_problem(s: &str) -> Option<String> {
    let problem = |why: String| Some(format!("netip.ParsePrefix({s:?}): {why}"));
    let Some((addr, bits)) = s.rsplit_once('/') else {
        return problem("no '/'".to_owned());
    };
    // Rust's `IpAddr` reads an address as Go's `netip.ParseAddr` does: an octet with a leading
    // zero, a zone (`%eth0`, refused in a prefix by Go) and anything else malformed fail.
    if addr.parse::<std::net::IpAddr>().is_err() {
        return problem(format!(
            "ParseAddr({addr:?}): no IP address (an IPv4 octet has no leading zero, and a \
             prefix no zone)"
        ));
    }
    // `strconv.Atoi` takes a sign and leading zeros; Go's prefix refuses both.
    let digits = !bits.is_empty() && bits.bytes().all(|b| b.is_ascii_digit());
    if !digits || (bits.len() > 1 && bits.starts_with('0')) {
        return problem(format!("bad bits after slash: {bits:?}"));
    }
    None
}

/// The error of a string that is no CIDR as Go reads one, as Kubernetes words it.
fn not_a_prefix(ftx: &FunctionContext, why: &str) -> kube_cel::cel::ExecutionError {
    ftx.error(format!(
        "network address parse error during conversion from string: {why} (a CIDR is \
         written '10.0.0.0/8' or 'fd00::/8', with no leading zeros)"
    ))
}

/// `cidr(<string>)`: kube-cel's, given only a prefix Go's `netip.ParsePrefix` reads.
pub(super) fn cidr(ftx: &FunctionContext, s: Arc<String>) -> ResolveResult {
    if let Some(why) = go_prefix_problem(&s) {
        return Err(not_a_prefix(ftx, &why));
    }
    kube_cel_call(ftx, "cidr(a)", Value::String(s), None)
}

/// `isCIDR(<string>)` (and kube-cel's `isCIDRv4`, `isCIDRv6`): false for what Go's
/// `netip.ParsePrefix` refuses, else kube-cel's answer.
pub(super) fn is_cidr(ftx: &FunctionContext, s: Arc<String>) -> ResolveResult {
    if go_prefix_problem(&s).is_some() {
        return Ok(Value::Bool(false));
    }
    let call = match ftx.name {
        "isCIDRv4" => "isCIDRv4(a)",
        "isCIDRv6" => "isCIDRv6(a)",
        _ => "isCIDR(a)",
    };
    kube_cel_call(ftx, call, Value::String(s), None)
}

/// `<CIDR>.containsCIDR(<string|CIDR>)`: kube-cel's, a string argument read as Go reads a
/// prefix (one Go refuses fails, as in Kubernetes).
pub(super) fn contains_cidr(
    ftx: &FunctionContext,
    This(this): This<Value>,
    Arguments(args): Arguments,
) -> ResolveResult {
    let [other] = &args[..] else {
        return Err(ftx.error(format!(
            "containsCIDR takes one CIDR or string (got {})",
            args.iter().map(value_type).collect::<Vec<_>>().join(", ")
        )));
    };
    if let Value::String(s) = other
        && let Some(why) = go_prefix_problem(s)
    {
        return Err(not_a_prefix(ftx, &why));
    }
    kube_cel_call(ftx, "a.containsCIDR(b)", this, Some(other))
}

#[cfg(test)]
mod tests {
    use super::go_prefix_problem;

    #[test]
    fn prefixes_are_read_as_go_reads_them() {
        for ok in [
            "10.0.0.0/8",
            "10.0.0.0/0",
            "::/0",
            "fd00::/128",
            "1.2.3.4/99",
        ] {
            assert_eq!(go_prefix_problem(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("10.0.0.0/08", "bad bits after slash: \"08\""),
            ("10.0.0.0/00", "bad bits after slash: \"00\""),
            ("10.0.0.0/+8", "bad bits after slash: \"+8\""),
            ("10.0.0.0/", "bad bits after slash: \"\""),
            ("10.0.0.0", "no '/'"),
            ("010.0.0.0/8", "ParseAddr(\"010.0.0.0\")"),
            ("fe80::1%eth0/64", "ParseAddr(\"fe80::1%eth0\")"),
        ] {
            let problem = go_prefix_problem(bad).unwrap_or_default();
            assert!(problem.contains(why), "{bad}: {problem}");
        }
    }
}
