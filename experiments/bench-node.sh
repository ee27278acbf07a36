#!/usr/bin/env bash
# The distributed node's own path, saturated (issue 20, item 3): the per-box
# cost of the paper's scheme. One `dl7 node` of a 2-node cluster, serving
# the keys it owns from its cache and forwarding the others to the node that
# owns them, against the same job done by one box of a cache cluster built
# from off-the-shelf parts: HAProxy (hashing the URI over the two caches) in
# front of its own nginx cache, the other keys going to the other box's
# nginx cache. Same request mix through both, same regime as
# experiments/bench-saturated.sh: the measured box alone on one core, held
# to a share of it by a CPU cgroup, so that it is the bottleneck.
#
#   experiments/bench-node.sh                         # reports/bench-real-latest/node*.csv (git-ignored)
#   ROUNDS=1 DURATION=2 experiments/bench-node.sh     # a smoke run
#   BAL_QUOTA=1 ROUNDS=5 DURATION=10 experiments/bench-node.sh   # the whole core, on a machine with cores to outrun it
#   experiments/bench-node.sh --help                  # this text
#
# The setups (a fresh set of processes each round, everything on 127.0.0.1):
# * dl7: the measured box is `dl7 node --id $BOX --nodes A0,A1 --policy
#   $POLICY --worker-threads 1` (default node 0, policy md5). The other
#   node (same flags: the owner of the other keys) and the origin (`dl7
#   origin --workload surge100 --worker-threads 1`) run on the other core.
#   Only the measured node receives client requests: it serves what it owns
#   from its cache and forwards the rest (with dl7's hop header) to the
#   other node, which serves them from its cache. A forwarded object is not
#   cached at the receiving node.
# * peer: the measured box is HAProxy (`nbthread 1`, `balance uri`,
#   `hash-type consistent`, `http-reuse always`: real-lib.sh's
#   haproxy_config, as bench-saturated.sh runs it, plus a stats listener that
#   is read only between runs) and its local nginx cache, HAProxy's server
#   n$BOX (one process, one worker, `proxy_cache` keyed on $request_uri:
#   cache_config below). The other box's nginx cache (the same config) and
#   the same dl7 origin run on the other core. HAProxy sends each URI to one of the two caches: the
#   local one over loopback inside the box, the other one across.
# The exact configurations are the heredocs below (and haproxy_config in
# real-lib.sh); the last peer run's generated files are copied to
# $OUT/node-configs/.
#
# Both are warmed first: one pass over every distinct path of the mix
# (curl, keep-alive, each answer checked for 200), then WARMUP seconds of the
# load itself, so that during the measured run every request is a cache hit
# at the box that owns it. That is shown, not assumed: for dl7 the measured
# node's counters (GET /_dl7/stats on its listener: requests, hits, forwarded,
# before and after the run) give its local-hit and forwarded shares; for the
# peer, HAProxy's per-server request counters give the local and forwarded
# shares; for both, the origin's request counter over the run (read on its
# admin listener; origin_fetches) is every miss anywhere (0 when every
# request was a hit). The two hash functions (dl7's POLICY over logical
# names, HAProxy's consistent ring over server ids) split the Zipf-weighted
# stream differently, so the local and forwarded shares differ between the
# setups: compare them beside the costs. BOX=1 measures the other half of
# each cluster instead (the complementary shares); the mean of BOX=0 and
# BOX=1 is the cluster's per-box cost with clients spread over both boxes.
#
# The load: wrk (one thread, $CONNECTIONS connections, keep-alive) on the
# other core, each request's path the next of the surge100 workload's seeded
# stream (100,000 requests over its 100 objects, Zipf popularity, sizes 200 B
# to 1.6 MB, mean 22 KB per request; as bench-saturated.sh draws it from
# `dl7 trace gen`), its latency percentiles from wrk's histogram.
#
# The budget: the measured box's processes (the dl7 node; or HAProxy and
# its nginx cache) alone on CPU $BAL_CPU (default 0), at niceness $NICE, started inside
# a CPU cgroup of our own whose quota is BAL_QUOTA of that core (default 0.5,
# cpu.cfs_quota_us or cpu.max over a 10 ms period; BAL_QUOTA=1: no quota).
# CPU per request is the cgroup's CPU time over the measured run (cgroup v2
# cpu.stat usage_usec; on cgroup v1, cpuacct.usage) divided by the requests
# wrk completed. `saturated` says yes when the box used at least 95% of its
# budget while the other core (/proc/stat) was under 95% busy, else which
# of the two failed.
#
# Runs: ROUNDS interleaved rounds of every setup (dl7, peer), WARMUP seconds
# of load after the warm pass, then DURATION measured; the medians and the
# spread (min and max of req/s) of the rounds.
#
# Environment knobs:
#   ROUNDS (5)  DURATION (10, seconds)  WARMUP (2, seconds)  CONNECTIONS (64)
#   BAL_QUOTA (0.5, share of one core)  BAL_CPU (0)  REST_CPUS (1)
#   SETUPS ("dl7 peer")  POLICY (md5, dl7's)  BOX (0: which of the two boxes is measured)
#   DL7 (target/release/dl7)
#   OUT (reports/bench-real-latest; refuses to write over files git tracks)
#   NICE (-10 as root)  KEEP_WORK (set: keep the scratch directory)
#
# Writes $OUT/node-rounds.csv (every run), $OUT/node.csv (medians and
# spread) and $OUT/node-configs/; prints dl7's ratios to the peer. Needs
# root for the cgroup (without one only BAL_QUOTA=1 runs, CPU then from
# /proc/PID/stat). Installs what is missing: `need haproxy nginx wrk`
# (apt-get: haproxy, nginx-light, wrk; curl and python3 are assumed). Never
# used by tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
    exit 0
fi
[ $# -eq 0 ] || { echo "usage: [ENV=...] $0 [--help]" >&2; exit 2; }
case ${BOX:-0} in 0 | 1) ;; *) echo "error: BOX is 0 or 1" >&2; exit 2 ;; esac

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-64}
BAL_CPU=${BAL_CPU:-0}
REST_CPUS=${REST_CPUS:-1}
BAL_QUOTA=${BAL_QUOTA:-0.5}
SETUPS=${SETUPS:-dl7 peer}
POLICY=${POLICY:-md5}
BOX=${BOX:-0}
DL7=${DL7:-target/release/dl7}
OUT=${OUT:-reports/bench-real-latest}
WORK=$(mktemp -d /tmp/dl7-node-XXXXXX)
PIDS=()

. experiments/real-lib.sh

# The box's CPU budget and accounting (real-lib.sh), removed at the end.
cpu_box dl7-node
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
[ -x "$DL7" ] || { echo "error: $DL7 not found; run cargo build --release first" >&2; exit 2; }
for f in node-rounds.csv node.csv; do
    if git ls-files --error-unmatch "$OUT/$f" >/dev/null 2>&1; then
        echo "error: $OUT/$f is committed; give another OUT (default reports/bench-real-latest)" >&2
        exit 2
    fi
done
mkdir -p "$OUT/node-configs"
ROUNDS_CSV=$OUT/node-rounds.csv
echo "round,setup,req_per_s,mbit_per_s,p50_ms,p99_ms,p999_ms,cpu_us_per_request,box_budget_used,rest_cpu,saturated,errors,box_requests,local_share,local_hit_share,forwarded_share,origin_fetches" >"$ROUNDS_CSV"

label() {
    case $1 in
    dl7) echo "dl7 node $BOX of 2 ($POLICY)" ;;
    peer) echo "haproxy + nginx cache $BOX of 2" ;;
    esac
}

# The request paths (one per line, the seeded stream) and the distinct ones.
stream_paths >"$WORK/paths"
[ -s "$WORK/paths" ] || { echo "error: no request paths drawn" >&2; exit 1; }
sort -u "$WORK/paths" >"$WORK/distinct"

wrk_script >"$WORK/paths.lua"

# cache_config NAME PORT: one nginx cache (one process, one worker) on PORT
# in front of $ORIGIN, as an operator would set one up for this job: every
# response cached by its URI for as long as the origin says (max-age: a
# year), one fill per object at a time, keep-alive to the origin, hits sent
# with sendfile from the cache files (page cache; the whole catalog is
# 2.6 MB) whose descriptors stay open, X-Cache like dl7's node sets.
cache_config() {
    local name=$1 port=$2 dir=$WORK/$1
    mkdir -p "$dir/tmp" "$dir/cache"
    cat <<EOF
daemon off;
master_process off;
worker_processes 1;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 8192; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000000;
    default_type application/octet-stream;
    client_body_temp_path $dir/tmp;
    proxy_temp_path $dir/tmp;
    fastcgi_temp_path $dir/tmp;
    uwsgi_temp_path $dir/tmp;
    scgi_temp_path $dir/tmp;
    open_file_cache max=1000 inactive=60s;
    proxy_cache_path $dir/cache levels=1:2 keys_zone=$name:10m max_size=256m inactive=1d use_temp_path=off;
    upstream origin {
        server $ORIGIN;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache $name;
            proxy_cache_key \$request_uri;
            proxy_cache_lock on;
            add_header X-Cache \$upstream_cache_status;
        }
    }
}
EOF
}

# stats_listener PORT: HAProxy's stats page (CSV at /stats;csv), read only
# before and after a measured run; appended to haproxy_config's output.
stats_listener() {
    cat <<EOF
frontend stats
    bind 127.0.0.1:$1
    stats enable
    stats uri /stats
EOF
}

# boxed NAME CMD...: CMD inside the box's cgroups from its first
# instruction, pinned to BAL_CPU (its output in $WORK/NAME.out, .err); sets
# LAST_PID and adds it to PIDS.
boxed() {
    local name=$1; shift
    (
        [ -z "$CG_CPU" ] || echo "$BASHPID" >"$CG_CPU/cgroup.procs"
        [ -z "$CG_ACCT" ] || [ "$CG_ACCT" = "$CG_CPU" ] || echo "$BASHPID" >"$CG_ACCT/cgroup.procs"
        pinned "$BAL_CPU" "$@"
    ) >"$WORK/$name.out" 2>"$WORK/$name.err" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# outside NAME CMD...: CMD pinned to REST_CPUS, outside the box; sets LAST_PID.
outside() {
    local name=$1; shift
    pinned "$REST_CPUS" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# box_usage_us: the box's CPU time so far, microseconds.
BOX_PIDS=()
box_usage_us() {
    case $ACCT_FILE in
    cpu.stat) awk '$1 == "usage_usec" { print $2 }' "$CG_ACCT/cpu.stat" ;;
    cpuacct.usage) echo $(($(cat "$CG_ACCT/cpuacct.usage") / 1000)) ;;
    *) echo $(($(cpu_ticks "${BOX_PIDS[@]}") * 1000000 / $(getconf CLK_TCK))) ;;
    esac
}


# start_setup SETUP: the origin, the other box and the measured box; sets
# TARGET (where wrk sends), ORIGIN, and what counters() reads.
start_setup() {
    local port a0 a1
    start origin "$REST_CPUS" origin --workload surge100 --worker-threads 1 --admin 127.0.0.1:0
    ORIGIN=$ADDR
    ORIGIN_ADMIN=$(sed -n 's/^dl7-ready .*admin=\([^ ]*\).*/\1/p' "$WORK/origin.out")
    case $1 in
    dl7)
        local nodes=127.0.0.1:$(free_port),127.0.0.1:$(free_port)
        # The owner of the other keys first, so that the measured node finds it up.
        start other "$REST_CPUS" node --id $((1 - BOX)) --nodes "$nodes" --origin "$ORIGIN" --policy "$POLICY" \
            --worker-threads 1
        boxed box "$DL7" node --id "$BOX" --nodes "$nodes" --origin "$ORIGIN" --policy "$POLICY" --worker-threads 1
        BOX_PIDS=("$LAST_PID")
        wait_ready box
        TARGET=$ADDR
        ;;
    peer)
        local local_port remote_port
        local_port=$(free_port)
        remote_port=$(free_port)
        cache_config remote "$remote_port" >"$WORK/remote.conf"
        outside cache-remote nginx -c "$WORK/remote.conf" -e "$WORK/remote/error.log"
        cache_config local "$local_port" >"$WORK/local.conf"
        boxed cache-local nginx -c "$WORK/local.conf" -e "$WORK/local/error.log"
        BOX_PIDS=("$LAST_PID")
        # real-lib.sh's balancer config over the two caches: n$BOX the box's own, the other the other box's.
        NODES=("127.0.0.1:$local_port" "127.0.0.1:$remote_port")
        [ "$BOX" = 0 ] || NODES=("127.0.0.1:$remote_port" "127.0.0.1:$local_port")
        port=$(free_port)
        STATS_PORT=$(free_port)
        { haproxy_config "$port" 1 "" "    http-reuse always"; stats_listener "$STATS_PORT"; } >"$WORK/haproxy.cfg"
        boxed haproxy haproxy -f "$WORK/haproxy.cfg" -db
        BOX_PIDS+=("$LAST_PID")
        wait_port "$remote_port"
        wait_port "$local_port"
        wait_port "$port"
        wait_port "$STATS_PORT"
        TARGET=127.0.0.1:$port
        cp "$WORK/haproxy.cfg" "$WORK/local.conf" "$WORK/remote.conf" "$OUT/node-configs/"
        ;;
    esac
}

# warm: every distinct path once through the box, each answer a 200.
warm() {
    local codes
    sed "s|.*|url = \"http://$TARGET&\"\noutput = \"/dev/null\"|" "$WORK/distinct" >"$WORK/warm.curl"
    codes=$(pinned "$REST_CPUS" curl -s -K "$WORK/warm.curl" -w '%{http_code}\n' | sort | uniq -c)
    if [ "$(echo "$codes" | awk '$2 != 200' | wc -l)" -ne 0 ]; then
        echo "error: warm pass through $TARGET answered: $codes" >&2
        exit 1
    fi
}

# counters SETUP: one line of the box's request counters and the origin's:
# BOX_REQUESTS LOCAL LOCAL_HITS FORWARDED ORIGIN_REQUESTS (LOCAL_HITS is -1
# where the box has no such counter).
counters() {
    local origin_requests
    origin_requests=$(curl -s "http://$ORIGIN_ADMIN/stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["requests"])')
    case $1 in
    dl7)
        curl -s "http://$TARGET/_dl7/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(s["requests"], s["owner_requests"], s["hits"], s["forwarded"], sys.argv[1])' "$origin_requests"
        ;;
    peer)
        curl -s "http://127.0.0.1:$STATS_PORT/stats;csv" | python3 -c '
import csv, sys
rows = {(r["# pxname"], r["svname"]): r for r in csv.DictReader(sys.stdin)}
req = lambda k: int(rows[k]["req_tot"] or 0)
box = int(sys.argv[2])
print(req(("fe", "FRONTEND")), req(("nodes", f"n{box}")), -1, req(("nodes", f"n{1 - box}")), sys.argv[1])' \
            "$origin_requests" "$BOX"
        ;;
    esac
}

wrk_run() { # SECONDS: prints wrk's result line
    PATHS=$WORK/paths pinned "$REST_CPUS" wrk -t1 -c"$CONNECTIONS" -d"$1"s -s "$WORK/paths.lua" "http://$TARGET/" \
        2>/dev/null | sed -n 's/^wrk-result //p'
}

# measure ROUND SETUP: a fresh setup, warmed, then a measured run.
measure() {
    start_setup "$2"
    warm
    wrk_run "$WARMUP" >/dev/null
    local c0 c1 u0 u1 b0 b1 line
    c0=$(counters "$2")
    u0=$(box_usage_us)
    b0=$(busy_ticks "$REST_CPUS")
    line=$(wrk_run "$DURATION")
    u1=$(box_usage_us)
    b1=$(busy_ticks "$REST_CPUS")
    c1=$(counters "$2")
    stop_all
    [ -n "$line" ] || { echo "error: wrk printed no result against $2" >&2; exit 1; }
    python3 - "$1" "$(label "$2")" "$line" "$((u1 - u0))" "$((b1 - b0))" "$(getconf CLK_TCK)" "$ROUNDS_CSV" "$BAL_QUOTA" \
        "$c0" "$c1" <<'EOF'
import csv, sys
rnd, label, line, usage, busy, hz, path, quota, c0, c1 = sys.argv[1:11]
requests, nbytes, secs, p50, p99, p999, errors = line.split()
requests, secs = int(requests), float(secs)
c = [b - a for a, b in zip(map(int, c0.split()), map(int, c1.split()))]
box, local, hits, fwd, origin = c
hits = -1 if int(c0.split()[2]) < 0 else hits
# The share of its budget the box used, the other core's busy share.
cpu = int(usage) / 1e6 / secs / float(quota)
rest = int(busy) / int(hz) / secs
us = int(usage) / max(requests, 1)
saturated = "yes" if cpu >= 0.95 and rest < 0.95 else ("no: box %.0f%%" % (cpu * 100) if cpu < 0.95 else "no: other core %.0f%%" % (rest * 100))
share = lambda n: f"{n / box:.4f}" if box > 0 else ""
# Without a hit counter (the peer) the box's hits are at least its local requests less every origin fetch.
hit = share(hits) if hits >= 0 else share(max(local - origin, 0))
row = [rnd, label, f"{requests / secs:.1f}", f"{int(nbytes) * 8 / secs / 1e6:.2f}", p50, p99, p999, f"{us:.2f}",
       f"{cpu:.3f}", f"{rest:.3f}", saturated, errors, box, share(local), hit, share(fwd), origin]
print(f"  round {rnd} {label:<34} {requests / secs:>9.1f} req/s  p99 {float(p99):>7.3f} ms  {us:>6.2f} us/req  "
      f"box {cpu * 100:>3.0f}% of budget  other core {rest * 100:>3.0f}%  errors {errors}\n"
      f"          {box} requests at the box: local {share(local)}, local hits {hit}, forwarded {share(fwd)}; "
      f"origin fetches {origin}")
with open(path, "a", newline="") as f:
    csv.writer(f).writerow(row)
EOF
}

echo "$("$DL7" --version); $(haproxy -v | head -1 | cut -d' ' -f1-3); $(nginx -v 2>&1); $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "measured box on CPU $BAL_CPU (a budget of $BAL_QUOTA of it), the other box, the origin and wrk on CPU $REST_CPUS, niceness $NICE; $CONNECTIONS connections"
echo "surge100 stream ($(wc -l <"$WORK/paths") requests over $(wc -l <"$WORK/distinct") paths); $ROUNDS rounds of: $SETUPS; warm pass + ${WARMUP}s warm-up + ${DURATION}s each"
for r in $(seq 1 "$ROUNDS"); do
    for s in $SETUPS; do measure "$r" "$s"; done
done

python3 - "$ROUNDS_CSV" "$OUT/node.csv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
cols = ["req_per_s", "mbit_per_s", "p50_ms", "p99_ms", "p999_ms", "cpu_us_per_request", "box_budget_used", "rest_cpu",
        "local_share", "local_hit_share", "forwarded_share"]
groups = {}
for r in rows:
    groups.setdefault(r["setup"], []).append(r)
med = {}
with open(sys.argv[2], "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["setup"] + cols + ["req_per_s_min", "req_per_s_max", "saturated_rounds", "errors", "origin_fetches", "rounds"])
    for key in sorted(groups):
        rs = groups[key]
        m = {c: statistics.median(float(r[c]) for r in rs if r[c] != "") if any(r[c] != "" for r in rs) else float("nan")
             for c in cols}
        med[key] = m
        rps = [float(r["req_per_s"]) for r in rs]
        w.writerow([key] + [f"{m[c]:.3f}" if c not in ("local_share", "local_hit_share", "forwarded_share") else f"{m[c]:.4f}"
                            for c in cols]
                   + [f"{min(rps):.1f}", f"{max(rps):.1f}", sum(r["saturated"] == "yes" for r in rs),
                      sum(int(r["errors"]) for r in rs), sum(int(r["origin_fetches"]) for r in rs), len(rs)])
print(f"\nmedians ({sys.argv[2]}):")
print(f"{'setup':<34} {'req/s':>9} {'p50':>7} {'p99':>7} {'p99.9':>7} {'us/req':>7} {'box%':>5} {'rest%':>5} "
      f"{'local':>6} {'hits':>6} {'fwd':>6}")
for s, m in sorted(med.items()):
    print(f"{s:<34} {m['req_per_s']:>9.1f} {m['p50_ms']:>7.3f} {m['p99_ms']:>7.3f} {m['p999_ms']:>7.3f} "
          f"{m['cpu_us_per_request']:>7.2f} {m['box_budget_used'] * 100:>5.0f} {m['rest_cpu'] * 100:>5.0f} "
          f"{m['local_share']:>6.3f} {m['local_hit_share']:>6.3f} {m['forwarded_share']:>6.3f}")
d = next((m for s, m in med.items() if s.startswith("dl7")), None)
for s, m in sorted(med.items()):
    if d is None or s.startswith("dl7"):
        continue
    print(f"dl7 node / {s}: req/s {d['req_per_s'] / m['req_per_s']:.2f}x, "
          f"CPU per request {d['cpu_us_per_request'] / m['cpu_us_per_request']:.2f}x")
EOF
