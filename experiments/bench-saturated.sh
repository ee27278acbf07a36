#!/usr/bin/env bash
# Peer benchmark where the balancer is the bottleneck: dl7's conventional
# front end against HAProxy and nginx, each alone on one core at (near)
# 100%, in front of backends that are never the bottleneck.
#
#   experiments/bench-saturated.sh                     # reports/bench-real-latest/saturated*.csv (git-ignored)
#   BACKENDS="1 4" MIXES=small ROUNDS=3 DURATION=5 experiments/bench-saturated.sh
#   BASELINE=/path/to/older/dl7 experiments/bench-saturated.sh   # adds that build as a peer
#
# The setup:
# * the balancer alone on CPU $BAL_CPU (default 0), at niceness $NICE,
#   held to BAL_QUOTA of that core (default 0.5) by a CPU cgroup
#   (cpu.cfs_quota_us over a 10 ms period). On a 2-core machine the other
#   core carries both the backends and the load generator, and together
#   they cost about what one balancer does per request: given a whole core,
#   the balancer waits for them (seen: balancer 73-80% busy, the other core
#   100%). At half a core every balancer saturates its budget while the
#   other core keeps headroom. BAL_QUOTA=1 gives it the whole core, on a
#   machine with the cores to outrun it;
# * the backends: one nginx process (`worker_processes 1`, static files,
#   `sendfile`, no access log) listening on N ports, one port per backend,
#   on CPU $REST_CPUS (default 1);
# * the load: wrk (one thread, $CONNECTIONS connections, keep-alive) on the
#   same CPU, each request's path drawn from the surge100 workload's seeded
#   stream (Zipf popularity), its latency percentiles from wrk's own
#   histogram (p50, p99, p99.9).
# The bodies: `small`, every object 1 KiB; `surge`, the surge100 catalog
# as `dl7 trace materialize` writes it (sizes from 200 B to 1.6 MB, mean
# 22 KB per request).
#
# The peers, each configured as an operator would for this job:
# * dl7:     `dl7 front --mode conventional --policy mit_ch --worker-threads 1`
#            (tokio's current-thread runtime: one core), TCP health checks
# * haproxy: HAProxy 2.6 (Debian), `nbthread 1`, `balance uri`,
#            `hash-type consistent`, `http-reuse always` (real-lib.sh's config)
# * nginx:   nginx (Debian's nginx-light), one worker, `hash $request_uri
#            consistent`, upstream keep-alive (real-lib.sh's config)
# Every balancer sets dl7's hop header, which nginx backends ignore.
#
# Is the balancer the bottleneck? For every run the script reads the
# balancer's CPU time (/proc/PID/stat) as a share of its budget, and the
# backends' core's busy share (/proc/stat), and writes both beside the
# figures: a run whose balancer is under 95% of its budget, or whose other
# core has no headroom (95% or more busy), says so in its row (`saturated`).
#
# Runs: for each mix and backend count, ROUNDS interleaved rounds of every
# peer (WARMUP seconds, then DURATION measured), a fresh balancer each
# time; the medians and the spread (min and max) of the rounds.
#
# Writes $OUT/saturated-rounds.csv (every run) and $OUT/saturated.csv
# (medians and spread), and prints dl7's ratios to each peer. PROFILE=1
# adds, after the rounds of each mix and backend count, two runs per peer
# that are not measured: one under `perf record -F 999 -g` of the balancer
# ($OUT/profile/PEER-MIX-N.perf.txt: the shares by binary, then the top
# symbols) and one under `strace -c -f` ($OUT/profile/PEER-MIX-N.strace.txt,
# with the system calls per request wrk completed). Installs
# haproxy, nginx-light and wrk if missing (apt-get; needs root). Never used
# by tests.
set -euo pipefail
cd "$(dirname "$0")/.."

BACKENDS=${BACKENDS:-1 4 16}
MIXES=${MIXES:-small surge}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-64}
BAL_CPU=${BAL_CPU:-0}
REST_CPUS=${REST_CPUS:-1}
BAL_QUOTA=${BAL_QUOTA:-0.5}
PEERS=${PEERS:-dl7 haproxy nginx}
BASELINE=${BASELINE:-}
DL7=${DL7:-target/release/dl7}
OUT=${OUT:-reports/bench-real-latest}
WORK=$(mktemp -d /tmp/dl7-saturated-XXXXXX)
PIDS=()

. experiments/real-lib.sh
# The balancer's CPU budget (real-lib.sh), removed at the end.
cpu_box dl7-saturated
CG=$CG_CPU
cleanup() {
    stop_all
    cpu_box_remove
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
# A signal ends the script (through the EXIT trap), not just the command it interrupts.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need haproxy haproxy
need nginx nginx-light
need wrk wrk
if [ -n "${PROFILE:-}" ]; then
    need perf linux-perf
    need strace strace
fi
[ -x "$DL7" ] || { echo "error: $DL7 not found; run cargo build --release first" >&2; exit 2; }
[ -z "$BASELINE" ] || [ -x "$BASELINE" ] || { echo "error: BASELINE=$BASELINE is not an executable" >&2; exit 2; }
[ -z "$BASELINE" ] || PEERS="$PEERS baseline"
mkdir -p "$OUT"
ROUNDS_CSV=$OUT/saturated-rounds.csv
echo "round,mix,balancer,backends,req_per_s,mbit_per_s,p50_ms,p99_ms,p999_ms,cpu_us_per_request,balancer_budget_used,rest_cpu,saturated,errors" >"$ROUNDS_CSV"

label() {
    case $1 in
    dl7) echo "dl7 conventional (mit_ch)" ;;
    haproxy) echo "haproxy uri consistent" ;;
    nginx) echo "nginx hash uri consistent" ;;
    baseline) echo "dl7 conventional (mit_ch) baseline" ;;
    esac
}

# The document roots and the request paths (one per line, the seeded stream).
"$DL7" trace materialize surge100 "$WORK/surge" >/dev/null 2>&1
stream_paths >"$WORK/paths-surge"
mkdir -p "$WORK/small"
(cd "$WORK/surge" && find . -type f) | while read -r f; do
    mkdir -p "$WORK/small/$(dirname "$f")"
    head -c 1024 /dev/zero | tr '\0' 'x' >"$WORK/small/$f"
done
cp "$WORK/paths-surge" "$WORK/paths-small"
[ -s "$WORK/paths-surge" ] || { echo "error: no request paths drawn" >&2; exit 1; }

wrk_script >"$WORK/paths.lua"

# start_backends N MIX: one nginx on N ports serving MIX's files; sets BACKEND_LIST and NODES.
start_backends() {
    local n=$1 mix=$2 i port
    NODES=()
    for i in $(seq 1 "$n"); do NODES+=("127.0.0.1:$(free_port)"); done
    BACKEND_LIST=$(IFS=,; echo "${NODES[*]}")
    mkdir -p "$WORK/backend-tmp"
    {
        echo "daemon off; master_process off; worker_processes 1;"
        echo "error_log $WORK/backend-error.log warn; pid $WORK/backend.pid;"
        echo "events { worker_connections 8192; }"
        echo "http {"
        echo "    access_log off; sendfile on; tcp_nopush on; keepalive_requests 10000000;"
        echo "    default_type application/octet-stream;"
        echo "    client_body_temp_path $WORK/backend-tmp; proxy_temp_path $WORK/backend-tmp;"
        echo "    fastcgi_temp_path $WORK/backend-tmp; uwsgi_temp_path $WORK/backend-tmp; scgi_temp_path $WORK/backend-tmp;"
        echo "    server {"
        for port in "${NODES[@]}"; do echo "        listen $port;"; done
        echo "        root $WORK/$mix;"
        echo "    }"
        echo "}"
    } >"$WORK/backend.conf"
    pinned "$REST_CPUS" nginx -c "$WORK/backend.conf" -e "$WORK/backend-error.log" >/dev/null 2>&1 &
    BACKEND_PID=$!
    PIDS+=("$BACKEND_PID")
    for i in "${NODES[@]}"; do wait_port "${i##*:}"; done
}

# start_peer PEER: the balancer pinned to BAL_CPU; sets TARGET and PEER_PID.
start_peer() {
    local port
    case $1 in
    dl7 | baseline)
        local exe=$DL7
        [ "$1" = dl7 ] || exe=$BASELINE
        DL7=$exe start "front-$1" "$BAL_CPU" front --mode conventional --nodes "$BACKEND_LIST" --policy mit_ch \
            --worker-threads 1
        TARGET=$ADDR
        PEER_PID=$LAST_PID
        ;;
    haproxy)
        port=$(free_port)
        haproxy_config "$port" 1 "" "    http-reuse always" >"$WORK/haproxy.cfg"
        pinned "$BAL_CPU" haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.out" 2>&1 &
        PEER_PID=$!
        PIDS+=("$PEER_PID")
        wait_port "$port"
        TARGET=127.0.0.1:$port
        ;;
    nginx)
        port=$(free_port)
        nginx_lb_config "$port" >"$WORK/lb.conf"
        pinned "$BAL_CPU" nginx -c "$WORK/lb.conf" -e "$WORK/lb-error.log" >/dev/null 2>&1 &
        PEER_PID=$!
        PIDS+=("$PEER_PID")
        wait_port "$port"
        TARGET=127.0.0.1:$port
        ;;
    esac
}

# budget PID: the balancer into the cgroup, every thread it has (it has not served yet).
budget() {
    [ -n "$CG" ] || return 0
    local t
    for t in /proc/"$1"/task/*; do echo "${t##*/}" >"$CG/tasks" 2>/dev/null || echo "${t##*/}" >"$CG/cgroup.threads"; done
    [ -f "$CG/cgroup.procs" ] && echo "$1" >"$CG/cgroup.procs" 2>/dev/null || true
}

stop_peer() {
    kill "$PEER_PID" 2>/dev/null || true
    wait "$PEER_PID" 2>/dev/null || true
}


wrk_run() { # SECONDS MIX: prints wrk's result line
    PATHS=$WORK/paths-$2 pinned "$REST_CPUS" wrk -t1 -c"$CONNECTIONS" -d"$1"s -s "$WORK/paths.lua" "http://$TARGET/" \
        2>/dev/null | sed -n 's/^wrk-result //p'
}

# measure ROUND MIX PEER: a warm-up and a measured run through a fresh balancer.
measure() {
    start_peer "$3"
    budget "$PEER_PID"
    wrk_run "$WARMUP" "$2" >/dev/null
    local t0 t1 b0 b1 line
    t0=$(cpu_ticks "$PEER_PID")
    b0=$(busy_ticks "$REST_CPUS")
    line=$(wrk_run "$DURATION" "$2")
    t1=$(cpu_ticks "$PEER_PID")
    b1=$(busy_ticks "$REST_CPUS")
    stop_peer
    python3 - "$1" "$2" "$(label "$3")" "$N" "$line" "$((t1 - t0))" "$((b1 - b0))" "$(getconf CLK_TCK)" "$ROUNDS_CSV" "$BAL_QUOTA" <<'EOF'
import csv, sys
rnd, mix, label, n, line, ticks, busy, hz, path, quota = sys.argv[1:11]
requests, nbytes, secs, p50, p99, p999, errors = line.split()
requests, secs = int(requests), float(secs)
# The share of its budget the balancer used.
cpu = int(ticks) / int(hz) / secs / float(quota)
rest = int(busy) / int(hz) / secs
us = int(ticks) / int(hz) / max(requests, 1) * 1e6
saturated = "yes" if cpu >= 0.95 and rest < 0.95 else ("no: balancer %.0f%%" % (cpu * 100) if cpu < 0.95 else "no: backends' core %.0f%%" % (rest * 100))
row = [rnd, mix, label, n, f"{requests / secs:.1f}", f"{int(nbytes) * 8 / secs / 1e6:.2f}", p50, p99, p999, f"{us:.2f}",
       f"{cpu:.3f}", f"{rest:.3f}", saturated, errors]
print(f"  round {rnd} {mix:<5} {label:<28} {requests / secs:>9.1f} req/s  p99 {float(p99):>7.3f} ms  {us:>6.2f} us/req  "
      f"balancer {cpu * 100:>3.0f}% of budget  other core {rest * 100:>3.0f}%  errors {errors}")
with open(path, "a", newline="") as f:
    csv.writer(f).writerow(row)
EOF
}

# profile MIX PEER: a fresh balancer under perf, then under strace, each
# for one load run; neither run is measured (both tools slow it).
profile() {
    local name="$2-$1-$N" data requests calls
    mkdir -p "$OUT/profile"
    data=$WORK/$name.perf.data
    start_peer "$2"
    budget "$PEER_PID"
    wrk_run "$WARMUP" "$1" >/dev/null
    perf record -q -F 999 -g -p "$PEER_PID" -o "$data" -- sleep "$DURATION" >/dev/null 2>&1 &
    local perf_pid=$!
    wrk_run "$DURATION" "$1" >/dev/null
    wait "$perf_pid" || true
    {
        echo "# perf record -F 999 -g -p PID of $(label "$2") ($1 bodies, $N backend(s), saturated setup), $(date -u +%F)"
        # (|| true: head closes the pipe early, which pipefail would count as a failure.)
        perf report -i "$data" --no-children --sort dso --stdio -g none 2>/dev/null | grep '%' | head -8 || true
        perf report -i "$data" --no-children --sort symbol --stdio -g none 2>/dev/null | grep '%' | sed 's/[ -]*$//' | head -40 || true
    } >"$OUT/profile/$name.perf.txt"
    wrk_run 1 "$1" >/dev/null
    strace -c -f -p "$PEER_PID" -o "$WORK/$name.strace" &
    local strace_pid=$!
    sleep 0.5
    requests=$(wrk_run "$DURATION" "$1" | cut -d' ' -f1)
    kill -INT "$strace_pid" 2>/dev/null || true
    wait "$strace_pid" 2>/dev/null || true
    stop_peer
    calls=$(awk '$NF == "total" { print $4 }' "$WORK/$name.strace")
    {
        echo "# strace -c -f -p PID of $(label "$2") ($1 bodies, $N backend(s)), one run of ${DURATION}s: $requests requests"
        echo "# system calls per request: $(python3 -c "print(f'{$calls / max($requests, 1):.2f}')")"
        cat "$WORK/$name.strace"
    } >"$OUT/profile/$name.strace.txt"
    echo "  profile $name: $(sed -n 2p "$OUT/profile/$name.strace.txt" | cut -c3-)"
}

echo "$("$DL7" --version); $(haproxy -v | head -1 | cut -d' ' -f1-3); $(nginx -v 2>&1); $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "balancer on CPU $BAL_CPU (a budget of $BAL_QUOTA of it), backends and wrk on CPU $REST_CPUS, niceness $NICE; $CONNECTIONS connections"
echo "mixes: $MIXES; backends: $BACKENDS; $ROUNDS rounds of: $PEERS; ${WARMUP}s warm-up + ${DURATION}s each"
for MIX in $MIXES; do
    for N in $BACKENDS; do
        start_backends "$N" "$MIX"
        echo "$MIX bodies, $N backend(s)"
        for r in $(seq 1 "$ROUNDS"); do
            for p in $PEERS; do measure "$r" "$MIX" "$p"; done
        done
        if [ -n "${PROFILE:-}" ]; then
            for p in $PEERS; do profile "$MIX" "$p"; done
        fi
        kill "$BACKEND_PID" 2>/dev/null || true
        wait "$BACKEND_PID" 2>/dev/null || true
    done
done

python3 - "$ROUNDS_CSV" "$OUT/saturated.csv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
cols = ["req_per_s", "mbit_per_s", "p50_ms", "p99_ms", "p999_ms", "cpu_us_per_request", "balancer_budget_used", "rest_cpu"]
groups = {}
for r in rows:
    groups.setdefault((r["mix"], int(r["backends"]), r["balancer"]), []).append(r)
med = {}
with open(sys.argv[2], "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["mix", "backends", "balancer"] + cols + ["req_per_s_min", "req_per_s_max", "saturated_rounds", "errors", "rounds"])
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2])):
        rs = groups[key]
        m = {c: statistics.median(float(r[c]) for r in rs) for c in cols}
        med[key] = m
        rps = [float(r["req_per_s"]) for r in rs]
        sat = sum(r["saturated"] == "yes" for r in rs)
        w.writerow(list(key) + [f"{m[c]:.3f}" for c in cols] + [f"{min(rps):.1f}", f"{max(rps):.1f}", sat,
                   sum(int(r["errors"]) for r in rs), len(rs)])
print(f"\nmedians ({sys.argv[2]}):")
print(f"{'mix':<6}{'n':>3} {'balancer':<36} {'req/s':>9} {'p50':>7} {'p99':>7} {'p99.9':>7} {'us/req':>7} {'bal%':>5} {'rest%':>5}")
for (mix, n, b), m in sorted(med.items()):
    print(f"{mix:<6}{n:>3} {b:<36} {m['req_per_s']:>9.1f} {m['p50_ms']:>7.3f} {m['p99_ms']:>7.3f} {m['p999_ms']:>7.3f} "
          f"{m['cpu_us_per_request']:>7.2f} {m['balancer_budget_used'] * 100:>5.0f} {m['rest_cpu'] * 100:>5.0f}")
dl7 = "dl7 conventional (mit_ch)"
for (mix, n, b), m in sorted(med.items()):
    if b == dl7 or (mix, n, dl7) not in med:
        continue
    d = med[(mix, n, dl7)]
    print(f"dl7 / {b} ({mix}, {n}): req/s {d['req_per_s'] / m['req_per_s']:.2f}x, "
          f"CPU per request {d['cpu_us_per_request'] / m['cpu_us_per_request']:.2f}x")
EOF
