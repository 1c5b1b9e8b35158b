#!/usr/bin/env bash
# Instructions the webhook and the floor server execute per review, counted by callgrind.
#
# Wall-clock figures on a shared VM wander with the host's load; instruction counts do not.
# Each server runs under callgrind twice, answering N1 and then N2 reviews sent by
# `kspy-load run` (c=4, keep-alive HTTPS); the difference divided by N2 - N1 is the cost of one
# review, free of start-up and TLS handshakes. User space only: the kernel's share (loopback
# TCP, four reads and one write per request for both servers) is not counted.
#
#   cargo build --release -p kspy-webhook
#   webhook/bench/instructions.sh [REVIEW.json] [N1] [N2]
#
# KSPY_WEBHOOK_BIN measures another webhook build (an A/B pair). Needs valgrind. Uses ports 127.0.0.1:19443 and :19080 (KSPY_BENCH_PORT, KSPY_BENCH_ADMIN).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
review=${1:-$root/policies/fixtures/attach-sre-ptrace.json}
n1=${2:-1000}
n2=${3:-3000}
port=${KSPY_BENCH_PORT:-19443}
admin=${KSPY_BENCH_ADMIN:-19080}
webhook=${KSPY_WEBHOOK_BIN:-$root/target/release/kspy-webhook}
load=$root/target/release/kspy-load

command -v valgrind >/dev/null || { echo "error: valgrind is not installed" >&2; exit 2; }
for bin in "$webhook" "$load"; do
    [ -x "$bin" ] || { echo "error: $bin is missing: cargo build --release -p kspy-webhook" >&2; exit 2; }
done
[ "$n2" -gt "$n1" ] || { echo "error: N2 ($n2) must be larger than N1 ($n1)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# One server under callgrind, answering $2 reviews; prints its total instruction count.
count() {
    local kind=$1 n=$2 out=$work/callgrind.$1.$2
    if [ "$kind" = webhook ]; then
        valgrind --tool=callgrind --callgrind-out-file="$out" "$webhook" --dev \
            --policies "$root/policies" --addr "127.0.0.1:$port" --admin-addr "127.0.0.1:$admin" \
            --log-format json --events off --namespace-lookup declared >/dev/null 2>"$work/$kind.log" &
    else
        valgrind --tool=callgrind --callgrind-out-file="$out" "$load" floor \
            --addr "127.0.0.1:$port" --tls-cert .kspy-dev/tls.crt --tls-key .kspy-dev/tls.key \
            >/dev/null 2>"$work/$kind.log" &
    fi
    local pid=$! up=
    for _ in $(seq 1 600); do
        if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
        sleep 0.2
    done
    [ -n "$up" ] || { echo "error: the $kind server did not start:" >&2; cat "$work/$kind.log" >&2; exit 1; }
    "$load" run --addr "127.0.0.1:$port" --ca .kspy-dev/ca.crt --review "$review" \
        -c 4 -n "$n" --warmup 0 -d 10m >"$work/$kind.$n.load"
    kill -INT "$pid"
    wait "$pid" || true
    if ! tail -1 "$work/$kind.$n.load" | awk '{ exit !($(NF-1) == 0 && $NF == 0) }'; then
        echo "error: the $kind server answered with errors:" >&2
        cat "$work/$kind.$n.load" >&2
        exit 1
    fi
    sed -n 's/^summary: //p' "$out"
}

declare -A per
for kind in webhook floor; do  # the webhook first: its --dev run makes the certificates
    a=$(count "$kind" "$n1")
    b=$(count "$kind" "$n2")
    per[$kind]=$(( (b - a) / (n2 - n1) ))
    printf '%-8s %9d instructions per review\n' "$kind" "${per[$kind]}"
done
awk -v w="${per[webhook]}" -v f="${per[floor]}" \
    'BEGIN { printf "ratio    %9.2fx\n", w / f }'
