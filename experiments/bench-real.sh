#!/usr/bin/env bash
# Peer comparison on loopback: dl7's conventional front end vs HAProxy as the
# conventional L7 balancer (`balance uri` + `hash-type consistent`), both in
# front of the same N dl7 node processes, driven by the same `dl7 load`.
#
#   cargo build --release && experiments/bench-real.sh
#   N=2 DURATION=5 CONNECTIONS=126 experiments/bench-real.sh
#   for n in 1 2 4; do N=$n DURATION=5 experiments/bench-real.sh; done   # reports/bench-real/peers.csv
#
# Installs the Debian package `haproxy` if it is missing (apt-get; needs root).
# HAProxy adds the `x-dl7-hop` header, so each node serves what HAProxy's own
# consistent hash sends it, exactly as behind dl7's conventional front end.
# Prints requests/s, payload Mbit/s, p99 and front-end CPU microseconds per
# request (from /proc/<pid>/stat) for each balancer, and appends the same
# rows to $OUT/peers.csv (default reports/bench-real). Never used by tests.
set -euo pipefail

N=${N:-4}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
CONNECTIONS=${CONNECTIONS:-$((63 * N))}
WORKLOAD=${WORKLOAD:-surge100}
DL7=${DL7:-target/release/dl7}
OUT=${OUT:-reports/bench-real}
WORK=$(mktemp -d /tmp/dl7-bench-XXXXXX)
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

if ! command -v haproxy >/dev/null; then
    echo "installing haproxy (Debian package)" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get install -y haproxy >&2
fi
[ -x "$DL7" ] || { echo "error: $DL7 not found; run cargo build --release first" >&2; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME ARGS...: runs a dl7 service, waits for its ready line, sets ADDR
# to its listen address and LAST_PID to its pid. Not in a subshell, so the
# pid lands in PIDS and the cleanup trap stops it.
start() {
    local name=$1; shift
    "$DL7" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    for _ in $(seq 1 500); do
        if grep -q '^dl7-ready' "$WORK/$name.out" 2>/dev/null; then
            ADDR=$(sed -n 's/^dl7-ready listen=\([^ ]*\).*/\1/p' "$WORK/$name.out")
            return
        fi
        sleep 0.02
    done
    echo "error: $name did not start: $(cat "$WORK/$name.err")" >&2
    exit 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure LABEL TARGET PID: warm-up, then a measured load run; prints one table row.
measure() {
    local label=$1 target=$2 pid=$3
    "$DL7" load --target "$target" --workload "$WORKLOAD" --seed 99 --connections "$CONNECTIONS" \
        --duration-s "$WARMUP" >/dev/null 2>&1
    local t0; t0=$(cpu_ticks "$pid")
    local line
    line=$("$DL7" load --target "$target" --workload "$WORKLOAD" --seed 1 --connections "$CONNECTIONS" \
        --duration-s "$DURATION" 2>/dev/null | sed -n 's/^dl7-result //p')
    local t1; t1=$(cpu_ticks "$pid")
    python3 - "$label" "$line" "$((t1 - t0))" "$(getconf CLK_TCK)" "$N" "$OUT/peers.csv" <<'EOF'
import csv, json, os, sys
label, line, ticks, hz, n, path = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
us = ticks / hz / max(line["requests"], 1) * 1e6
print(f'{label:<26} {line["req_per_s"]:>10.1f} {line["mbit_per_s"]:>9.2f} {line["p99_ms"]:>9.3f} {us:>11.1f} {line["errors"]:>7}')
new = not os.path.exists(path)
with open(path, "a", newline="") as f:
    w = csv.writer(f)
    if new:
        w.writerow(["balancer", "nodes", "req_per_s", "mbit_per_s", "p50_ms", "p99_ms", "fe_cpu_us_per_request", "errors"])
    w.writerow([label, n, f'{line["req_per_s"]:.1f}', f'{line["mbit_per_s"]:.2f}', f'{line["p50_ms"]:.3f}',
                f'{line["p99_ms"]:.3f}', f"{us:.1f}", line["errors"]])
EOF
}

start origin origin --workload "$WORKLOAD"
ORIGIN=$ADDR
NODES=()
for i in $(seq 0 $((N - 1))); do NODES+=("127.0.0.1:$(free_port)"); done
NODE_LIST=$(IFS=,; echo "${NODES[*]}")
for i in $(seq 0 $((N - 1))); do
    start "node$i" node --id "$i" --nodes "$NODE_LIST" --origin "$ORIGIN" --policy md5
done

start front front --mode conventional --nodes "$NODE_LIST" --policy mit_ch
FRONT=$ADDR
FRONT_PID=$LAST_PID

HAPORT=$(free_port)
{
    echo "global"
    echo "    maxconn 4000"
    echo "defaults"
    echo "    mode http"
    echo "    option http-keep-alive"
    echo "    timeout connect 2s"
    echo "    timeout client 30s"
    echo "    timeout server 30s"
    echo "frontend fe"
    echo "    bind 127.0.0.1:$HAPORT"
    echo "    default_backend nodes"
    echo "backend nodes"
    echo "    balance uri"
    echo "    hash-type consistent"
    echo "    http-request set-header x-dl7-hop 1"
    for i in "${!NODES[@]}"; do echo "    server n$i ${NODES[$i]}"; done
} >"$WORK/haproxy.cfg"
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.out" 2>&1 &
HA_PID=$!
PIDS+=("$HA_PID")
for _ in $(seq 1 500); do
    (exec 3<>"/dev/tcp/127.0.0.1/$HAPORT") 2>/dev/null && break
    sleep 0.02
done

mkdir -p "$OUT"
echo "$N nodes, $CONNECTIONS connections, $WORKLOAD, ${DURATION}s (after ${WARMUP}s warm-up)"
printf '%-26s %10s %9s %9s %11s %7s\n' "balancer" "req/s" "Mbit/s" "p99 ms" "fe us/req" "errors"
measure "dl7 conventional (mit_ch)" "$FRONT" "$FRONT_PID"
measure "haproxy uri consistent" "127.0.0.1:$HAPORT" "$HA_PID"
