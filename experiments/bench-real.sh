#!/usr/bin/env bash
# Peer benchmark on loopback: dl7's conventional front end against HAProxy
# and nginx as the conventional L7 balancer, each in front of the same dl7
# nodes, driven by the same `dl7 load`, each pinned to the same core.
#
#   cargo build --release && experiments/bench-real.sh          # reports/bench-real-latest/peers.csv (git-ignored)
#   BACKENDS="1 4" ROUNDS=3 DURATION=3 experiments/bench-real.sh
#   BASELINE=/path/to/older/dl7 experiments/bench-real.sh     # adds that build's front end as a peer
#   BASELINE=... BASELINE_ARGS="--worker-threads 2" ...       # with these flags (builds that have them)
# A front end without --worker-threads runs tokio's default, one worker per
# CPU it may use: one, pinned.
#
# The peers:
# * dl7:     `dl7 front --mode conventional --policy mit_ch --worker-threads $THREADS`
# * dl7-current: the same with `--worker-threads 1`: tokio's current-thread runtime
# * haproxy: HAProxy (Debian's 2.6), `balance uri`, `hash-type consistent`,
#            `nbthread $THREADS`, `tune.bufsize $BUFSIZE`, otherwise defaults
# * nginx:   nginx (Debian's nginx-light), one process, `hash $request_uri
#            consistent`, upstream keep-alive, `proxy_buffering off` with a
#            $BUFSIZE-byte buffer (a streaming relay like dl7's, no temp files)
# BUFSIZE defaults to 65536, dl7's relay buffer (RELAY_CHUNK), so that every
# peer moves a response through the same buffer size.
# Every balancer sets the hop header (`x-dl7-hop`), so each node serves what
# the balancer's own hash sends it. The balancer runs alone on CPU $BAL_CPU
# (default 0); the origin, the nodes and the load generator share $REST_CPUS
# (default 1).
#
# The machine is shared and noisy, so the peers are interleaved: for each
# backend count, ROUNDS rounds of (dl7, dl7-current, haproxy, nginx), each a WARMUP-second
# warm-up then a DURATION-second closed-loop run on 63 connections per
# backend; the median of the rounds is reported. CPU microseconds per request
# are the balancer's user + system time (/proc/PID/stat, every thread) over
# the measured run divided by the requests completed: less sensitive to the
# other load than req/s.
#
# Writes $OUT/peers-rounds.csv (every run) and $OUT/peers.csv (medians:
# balancer, backends, req_per_s, mbit_per_s, p50_ms, p99_ms, p999_ms,
# cpu_us_per_request, errors, rounds), and prints the medians and dl7's
# ratios to each peer. Installs haproxy and nginx-light if missing (apt-get;
# needs root). Never used by tests.
set -euo pipefail

BACKENDS=${BACKENDS:-1 2 4}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
THREADS=${THREADS:-2}
BAL_CPU=${BAL_CPU:-0}
REST_CPUS=${REST_CPUS:-1}
PER_BACKEND=${PER_BACKEND:-63}
WORKLOAD=${WORKLOAD:-surge100}
PEERS=${PEERS:-dl7 dl7-current haproxy nginx}
BUFSIZE=${BUFSIZE:-65536}
BASELINE=${BASELINE:-}
BASELINE_ARGS=${BASELINE_ARGS:-}
DL7=${DL7:-target/release/dl7}
OUT=${OUT:-reports/bench-real-latest}
WORK=$(mktemp -d /tmp/dl7-bench-XXXXXX)
PIDS=()

. "$(dirname "$0")/real-lib.sh"
cleanup() {
    stop_all
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

need haproxy haproxy
need nginx nginx-light
[ -x "$DL7" ] || { echo "error: $DL7 not found; run cargo build --release first" >&2; exit 2; }
[ -z "$BASELINE" ] || [ -x "$BASELINE" ] || { echo "error: BASELINE=$BASELINE is not an executable" >&2; exit 2; }
[ -z "$BASELINE" ] || PEERS="$PEERS baseline"
mkdir -p "$OUT"
ROUNDS_CSV=$OUT/peers-rounds.csv
echo "round,balancer,backends,req_per_s,mbit_per_s,p50_ms,p99_ms,p999_ms,cpu_us_per_request,errors" >"$ROUNDS_CSV"

label() {
    case $1 in
    dl7) echo "dl7 conventional (mit_ch)" ;;
    dl7-current) echo "dl7 conventional, current-thread" ;;
    haproxy) echo "haproxy uri consistent" ;;
    nginx) echo "nginx hash uri consistent" ;;
    baseline) echo "dl7 conventional (mit_ch) baseline" ;;
    esac
}

# start_peer PEER: starts the balancer pinned to BAL_CPU; sets TARGET and PEER_PID.
start_peer() {
    local port
    case $1 in
    dl7 | dl7-current | baseline)
        local exe=$DL7 extra=(--worker-threads "$THREADS")
        if [ "$1" = dl7-current ]; then extra=(--worker-threads 1); fi
        # shellcheck disable=SC2206 # BASELINE_ARGS is a list of flags
        if [ "$1" = baseline ]; then exe=$BASELINE extra=($BASELINE_ARGS); fi
        DL7=$exe start "front-$1" "$BAL_CPU" front --mode conventional --nodes "$NODE_LIST" --policy mit_ch "${extra[@]}"
        TARGET=$ADDR
        PEER_PID=$LAST_PID
        ;;
    haproxy)
        port=$(free_port)
        haproxy_config "$port" "$THREADS" "$BUFSIZE" >"$WORK/haproxy.cfg"
        pinned "$BAL_CPU" haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.out" 2>&1 &
        PEER_PID=$!
        PIDS+=("$PEER_PID")
        wait_port "$port"
        TARGET=127.0.0.1:$port
        ;;
    nginx)
        [ "$THREADS" -eq 1 ] || echo "note: nginx runs one process whatever THREADS says" >&2
        port=$(free_port)
        nginx_lb_config "$port" "            proxy_buffering off;
            proxy_buffer_size $BUFSIZE;
            proxy_buffers 4 $BUFSIZE;" >"$WORK/nginx.conf"
        pinned "$BAL_CPU" nginx -c "$WORK/nginx.conf" -e "$WORK/lb-error.log" >"$WORK/nginx.out" 2>&1 &
        PEER_PID=$!
        PIDS+=("$PEER_PID")
        wait_port "$port"
        TARGET=127.0.0.1:$port
        ;;
    esac
}

stop_peer() {
    kill "$PEER_PID" 2>/dev/null || true
    wait "$PEER_PID" 2>/dev/null || true
}

load() { # load SECONDS SEED: one closed-loop run into TARGET; prints its result JSON
    pinned "$REST_CPUS" "$DL7" load --target "$TARGET" --workload "$WORKLOAD" --seed "$2" \
        --connections "$CONNECTIONS" --duration-s "$1" --worker-threads 1 2>/dev/null | sed -n 's/^dl7-result //p'
}

# measure ROUND PEER: a warm-up and a measured run through a fresh balancer.
measure() {
    start_peer "$2"
    load "$WARMUP" 99 >/dev/null
    local t0 t1 line
    t0=$(cpu_ticks "$PEER_PID")
    line=$(load "$DURATION" "$1")
    t1=$(cpu_ticks "$PEER_PID")
    stop_peer
    python3 - "$1" "$(label "$2")" "$N" "$line" "$((t1 - t0))" "$(getconf CLK_TCK)" "$ROUNDS_CSV" <<'EOF'
import csv, json, sys
rnd, label, n, line, ticks, hz, path = sys.argv[1:8]
r = json.loads(line)
us = int(ticks) / int(hz) / max(r["requests"], 1) * 1e6
row = [rnd, label, n, f'{r["req_per_s"]:.1f}', f'{r["mbit_per_s"]:.2f}', f'{r["p50_ms"]:.3f}', f'{r["p99_ms"]:.3f}',
       f'{r["p999_ms"]:.3f}', f"{us:.1f}", r["errors"]]
print(f"  round {rnd}  {label:<32} {r['req_per_s']:>9.1f} req/s  p99 {r['p99_ms']:>7.3f} ms  {us:>6.1f} us/req  errors {r['errors']}")
with open(path, "a", newline="") as f:
    csv.writer(f).writerow(row)
EOF
}

echo "$("$DL7" --version); balancer on CPU $BAL_CPU ($THREADS thread(s)), the rest on CPU $REST_CPUS, niceness $NICE"
echo "backends: $BACKENDS; $ROUNDS rounds of: $PEERS; ${WARMUP}s warm-up + ${DURATION}s each; peers' buffers $BUFSIZE bytes"
for N in $BACKENDS; do
    CONNECTIONS=$((PER_BACKEND * N))
    PIDS=()
    start_cluster "$N" "$REST_CPUS" md5
    # The nodes' caches filled once, straight, so every peer sees only hits.
    for a in "${NODES[@]}"; do TARGET=$a load 1 98 >/dev/null; done
    echo "$N backend(s), $CONNECTIONS connections"
    for r in $(seq 1 "$ROUNDS"); do
        for p in $PEERS; do measure "$r" "$p"; done
    done
    stop_all
done

python3 - "$ROUNDS_CSV" "$OUT/peers.csv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
cols = ["req_per_s", "mbit_per_s", "p50_ms", "p99_ms", "p999_ms", "cpu_us_per_request", "errors"]
groups = {}
for r in rows:
    groups.setdefault((r["balancer"], int(r["backends"])), []).append(r)
with open(sys.argv[2], "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["balancer", "backends"] + cols + ["rounds"])
    med = {}
    for (b, n), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        m = {c: statistics.median(float(r[c]) for r in rs) for c in cols}
        m["errors"] = sum(int(r["errors"]) for r in rs)
        med[(b, n)] = m
        w.writerow([b, n] + [f"{m[c]:.1f}" if c in ("req_per_s", "cpu_us_per_request") else
                              (str(m[c]) if c == "errors" else f"{m[c]:.3f}") for c in cols] + [len(rs)])
print(f"\nmedians ({sys.argv[2]}):")
print(f"{'balancer':<34} {'nodes':>5} {'req/s':>9} {'Mbit/s':>8} {'p50':>7} {'p99':>7} {'p99.9':>7} {'us/req':>7} {'errors':>6}")
for (b, n), m in sorted(med.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    print(f"{b:<34} {n:>5} {m['req_per_s']:>9.1f} {m['mbit_per_s']:>8.1f} {m['p50_ms']:>7.3f} {m['p99_ms']:>7.3f} "
          f"{m['p999_ms']:>7.3f} {m['cpu_us_per_request']:>7.1f} {m['errors']:>6}")
dl7 = "dl7 conventional (mit_ch)"
for (b, n), m in sorted(med.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    if b == dl7 or (dl7, n) not in med:
        continue
    d = med[(dl7, n)]
    print(f"dl7 / {b} at {n}: req/s {d['req_per_s'] / m['req_per_s']:.2f}x, "
          f"CPU per request {d['cpu_us_per_request'] / m['cpu_us_per_request']:.2f}x, p99 {d['p99_ms'] / m['p99_ms']:.2f}x")
EOF
