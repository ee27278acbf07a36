#!/usr/bin/env bash
# Where the real services spend their time under load: `perf record` of one
# process and `strace -c` syscall counts of the same process, divided by the
# requests it served. Two subjects:
#
#   SUBJECT=front  the conventional front end (md5) before N nodes
#   SUBJECT=haproxy HAProxy in the front end's place (the peer, for comparison)
#   SUBJECT=node   node 0's L7 dispatcher: the load goes straight to node 0
#                  of N (the receiver), which forwards (N-1)/N of requests
#
#   cargo build --release && SUBJECT=front N=1 experiments/profile-real.sh
#   SUBJECT=node N=4 experiments/profile-real.sh
#
# The profiled process is pinned to CPU $SUBJECT_CPU (default 0), every other
# process (origin, the other nodes, the load) to $REST_CPUS (default 1).
# First a run with no tool attached gives the subject's CPU time per request.
# Writes $OUT/$SUBJECT-$N.perf.txt (perf report, self time, top symbols),
# $OUT/$SUBJECT-$N.strace.txt (strace -c -f) and prints syscalls per request.
# Installs linux-perf and strace if they are missing (apt-get; needs root).
# Never used by tests.
set -euo pipefail

SUBJECT=${SUBJECT:-front}
N=${N:-1}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-$((63 * N))}
WORKLOAD=${WORKLOAD:-surge100}
SUBJECT_CPU=${SUBJECT_CPU:-0}
REST_CPUS=${REST_CPUS:-1}
DL7=${DL7:-target/release/dl7}
OUT=${OUT:-reports/bench-real-latest/profile}
WORK=$(mktemp -d /tmp/dl7-profile-XXXXXX)
PIDS=()

. "$(dirname "$0")/real-lib.sh"
cleanup() {
    stop_all
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

need perf linux-perf
need strace strace
[ -x "$DL7" ] || { echo "error: $DL7 not found; run cargo build --release first" >&2; exit 2; }
mkdir -p "$OUT"

case $SUBJECT in
front)
    start_cluster "$N" "$REST_CPUS" md5
    start front "$SUBJECT_CPU" front --mode conventional --nodes "$NODE_LIST" --policy md5
    TARGET=$ADDR
    PID=$LAST_PID
    ;;
node)
    [ "$N" -ge 2 ] || { echo "error: SUBJECT=node needs N >= 2 (a dispatcher with peers)" >&2; exit 2; }
    start_cluster "$N" "$REST_CPUS" md5
    TARGET=${NODES[0]}
    PID=${NODE_PIDS[0]}
    taskset -a -p -c "$SUBJECT_CPU" "$PID" >/dev/null
    ;;
haproxy)
    need haproxy haproxy
    start_cluster "$N" "$REST_CPUS" md5
    HAPORT=$(free_port)
    haproxy_config "$HAPORT" 1 >"$WORK/haproxy.cfg"
    pinned "$SUBJECT_CPU" haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.out" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    wait_port "$HAPORT"
    TARGET=127.0.0.1:$HAPORT
    ;;
*) echo "error: SUBJECT must be front, node or haproxy, not $SUBJECT" >&2; exit 2 ;;
esac

load() { # load SECONDS: one closed-loop run into $TARGET; prints its result JSON
    pinned "$REST_CPUS" "$DL7" load --target "$TARGET" --workload "$WORKLOAD" --seed 1 \
        --connections "$CONNECTIONS" --duration-s "$1" 2>/dev/null | sed -n 's/^dl7-result //p'
}
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
load 2 >/dev/null # warm-up: every object cached at its owner

# No tool attached: the subject's CPU time per request (utime + stime).
t0=$(cpu_ticks "$PID")
plain=$(load "$DURATION")
t1=$(cpu_ticks "$PID")
CPU_US=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); n=max(r["requests"],1); print("%.1f" % (int(sys.argv[2])/int(sys.argv[3])/n*1e6))' \
    "$plain" "$((t1 - t0))" "$(getconf CLK_TCK)")
echo "no tool: $CPU_US us of $SUBJECT CPU per request; $plain"

echo "perf record: $SUBJECT (pid $PID, cpu $SUBJECT_CPU), $N nodes, $CONNECTIONS connections, ${DURATION}s"
load "$DURATION" >"$WORK/perf.json" &
LOAD=$!
perf record -F 999 -g -p "$PID" -o "$WORK/perf.data" -- sleep "$DURATION" 2>"$WORK/perf.err" >/dev/null
wait "$LOAD"
{
    echo "# perf record -F 999 -g -p PID -- sleep $DURATION; perf report --no-children --sort symbol"
    echo "# $SUBJECT, $N nodes, $CONNECTIONS connections; load: $(cat "$WORK/perf.json")"
    echo "# without perf: $CPU_US us of $SUBJECT CPU (user + system) per request; load: $plain"
    echo "## by binary (kernel, dl7, libc, ...)"
    perf report -i "$WORK/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null | grep '%'
    echo "## user-space symbols (self time, share of all samples)"
    perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,symbol -g none 2>/dev/null |
        grep '%' | grep -v '\[kernel' | sed -n 1,60p
    echo "## kernel symbols (self time)"
    perf report -i "$WORK/perf.data" --stdio --no-children --sort symbol -g none 2>/dev/null |
        grep '%.*\[k\]' | sed -n 1,40p
} >"$OUT/$SUBJECT-$N.perf.txt"
sed -n 1,30p "$OUT/$SUBJECT-$N.perf.txt"

echo "strace -c -f: $SUBJECT"
strace -c -f -p "$PID" -o "$WORK/strace.txt" &
STRACE=$!
sleep 0.5
load "$DURATION" >"$WORK/strace.json"
kill -INT "$STRACE"
wait "$STRACE" || true
served=$(field "$(cat "$WORK/strace.json")" requests)
{
    echo "# strace -c -f -p PID during a ${DURATION}s load run; $served requests (the load's count)"
    echo "# load under strace: $(cat "$WORK/strace.json")"
    cat "$WORK/strace.txt"
    python3 - "$WORK/strace.txt" "$served" <<'EOF'
import sys
path, served = sys.argv[1], int(sys.argv[2])
total, rows = 0, []
for line in open(path):
    parts = line.split()
    if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] not in ("total",):
        calls, name = int(parts[3]), parts[-1]
        rows.append((calls, name))
for calls, name in sorted(rows, reverse=True):
    total += calls
    print(f"per request: {name:<16} {calls / max(served, 1):6.2f}")
print(f"per request: {'all':<16} {total / max(served, 1):6.2f}")
EOF
} >"$OUT/$SUBJECT-$N.strace.txt"
cat "$OUT/$SUBJECT-$N.strace.txt"
