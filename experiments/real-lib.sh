# Shared by experiments/bench-real.sh, profile-real.sh, callgrind-real.sh and
# hardware/measure-modern.sh (sourced,
# never run): starting dl7 services with their ready line, pinning, CPU ticks.
#
# The caller sets DL7 (the binary), WORK (a scratch directory) and PIDS (an
# array the caller's cleanup trap kills by pid). Every process runs at
# niceness $NICE (default -10 as root): the benchmark's processes then take
# the CPU from other work on a shared machine, and every peer alike.

if [ -z "${NICE:-}" ]; then
    if [ "$(id -u)" -eq 0 ]; then NICE=-10; else NICE=0; fi
fi

# pinned CPUS CMD...: becomes CMD pinned to CPUS at niceness NICE (exec: call
# it in a subshell, `pinned ... &` or in a pipeline, so that $! is CMD's pid).
pinned() {
    local cpus=$1; shift
    exec nice -n "$NICE" taskset -c "$cpus" "$@"
}

# need CMD PACKAGE: installs the Debian package that provides CMD if missing.
need() {
    command -v "$1" >/dev/null && return
    echo "installing $2 (Debian package)" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y -qq "$2" >&2 || { $sudo apt-get update -qq >&2 && $sudo apt-get install -y -qq "$2" >&2; }
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME CPUS ARGS...: runs `dl7 ARGS` pinned to CPUS, waits for its ready
# line, sets ADDR to its listen address and LAST_PID to its pid. Not in a
# subshell, so the pid lands in PIDS and the caller's cleanup stops it.
start() {
    local name=$1 cpus=$2; shift 2
    pinned "$cpus" "$DL7" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_ready "$name"
}

# wait_ready NAME [TRIES]: waits (TRIES x 20 ms, default 10 s) for the ready
# line of the service whose output is $WORK/NAME.out; sets ADDR.
wait_ready() {
    local name=$1 tries=${2:-500}
    for _ in $(seq 1 "$tries"); do
        if grep -q '^dl7-ready' "$WORK/$name.out" 2>/dev/null; then
            ADDR=$(sed -n 's/^dl7-ready listen=\([^ ]*\).*/\1/p' "$WORK/$name.out")
            return
        fi
        sleep 0.02
    done
    echo "error: $name did not start: $(tail -5 "$WORK/$name.err")" >&2
    exit 1
}

# stop_all: stops every process in PIDS (by its pid, SIGTERM) and waits for them.
stop_all() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT (at most 10 s).
wait_port() {
    for _ in $(seq 1 500); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
        sleep 0.02
    done
    echo "error: nothing listens on 127.0.0.1:$1" >&2
    exit 1
}

# cpu_ticks PID...: user + system clock ticks of the processes so far
# (fields 14 and 15 of /proc/PID/stat, every thread included).
cpu_ticks() {
    local sum=0 p
    for p in "$@"; do sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo "$sum"
}

# start_cluster N CPUS POLICY: an origin and N nodes (POLICY) pinned to CPUS;
# sets ORIGIN, NODES (addresses), NODE_LIST (comma-joined), NODE_PIDS.
start_cluster() {
    local n=$1 cpus=$2 policy=$3 i
    start origin "$cpus" origin --workload "$WORKLOAD"
    ORIGIN=$ADDR
    NODES=()
    NODE_PIDS=()
    for i in $(seq 0 $((n - 1))); do NODES+=("127.0.0.1:$(free_port)"); done
    NODE_LIST=$(IFS=,; echo "${NODES[*]}")
    for i in $(seq 0 $((n - 1))); do
        start "node$i" "$cpus" node --id "$i" --nodes "$NODE_LIST" --origin "$ORIGIN" --policy "$policy"
        NODE_PIDS+=("$LAST_PID")
    done
}

# haproxy_config PORT THREADS [BUFSIZE] [EXTRA]: HAProxy as the conventional L7
# balancer over NODES: `balance uri` + `hash-type consistent`, THREADS
# threads, buffers of BUFSIZE bytes (empty: HAProxy's 16384), the hop header
# set so that each node serves what HAProxy's hash sends it; EXTRA is more
# lines of its backend section.
haproxy_config() {
    local i
    echo "global"
    echo "    maxconn 4000"
    echo "    nbthread $2"
    [ -z "${3:-}" ] || echo "    tune.bufsize $3"
    echo "defaults"
    echo "    mode http"
    echo "    option http-keep-alive"
    echo "    timeout connect 2s"
    echo "    timeout client 30s"
    echo "    timeout server 30s"
    echo "frontend fe"
    echo "    bind 127.0.0.1:$1"
    echo "    default_backend nodes"
    echo "backend nodes"
    echo "    balance uri"
    echo "    hash-type consistent"
    echo "    http-request set-header x-dl7-hop 1"
    [ -z "${4:-}" ] || echo "$4"
    for i in "${!NODES[@]}"; do echo "    server n$i ${NODES[$i]}"; done
}

# nginx_lb_config PORT [EXTRA]: nginx (one process) as the conventional L7
# balancer over NODES: `hash $request_uri consistent`, upstream keep-alive,
# the hop header set; EXTRA is more lines of its `location /`. Its temporary
# files go under $WORK/lb-tmp.
nginx_lb_config() {
    local a
    mkdir -p "$WORK/lb-tmp"
    cat <<EOF
daemon off;
master_process off;
worker_processes 1;
error_log $WORK/lb-error.log warn;
pid $WORK/lb.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/lb-tmp;
    proxy_temp_path $WORK/lb-tmp;
    fastcgi_temp_path $WORK/lb-tmp;
    uwsgi_temp_path $WORK/lb-tmp;
    scgi_temp_path $WORK/lb-tmp;
    keepalive_requests 1000000;
    upstream nodes {
        hash \$request_uri consistent;
$(for a in "${NODES[@]}"; do echo "        server $a;"; done)
        keepalive 512;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$1;
        location / {
            proxy_pass http://nodes;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header x-dl7-hop 1;
${2:-}
        }
    }
}
EOF
}

# cpu_box NAME: a CPU cgroup of our own for the measured process, held to
# BAL_QUOTA of one core (over a 10 ms period); sets CG_CPU (the quota) and
# CG_ACCT + ACCT_FILE (its CPU time: the same directory on cgroup v2,
# cpuacct on v1). Without root only BAL_QUOTA=1 runs. cpu_box_remove
# removes them (from the scripts' cleanup).
cpu_box() {
    CG_CPU=""
    CG_ACCT=""
    ACCT_FILE=""
    if [ -f /sys/fs/cgroup/cgroup.controllers ] && mkdir -p "/sys/fs/cgroup/$1-$$" 2>/dev/null; then
        CG_CPU=/sys/fs/cgroup/$1-$$
        CG_ACCT=$CG_CPU
        ACCT_FILE=cpu.stat
        echo "+cpu" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    elif [ -d /sys/fs/cgroup/cpu ] && mkdir -p "/sys/fs/cgroup/cpu/$1-$$" 2>/dev/null; then
        CG_CPU=/sys/fs/cgroup/cpu/$1-$$
        if [ -f /sys/fs/cgroup/cpu/cpuacct.usage ]; then
            CG_ACCT=$CG_CPU # cpu,cpuacct mounted together
        elif [ -d /sys/fs/cgroup/cpuacct ] && mkdir -p "/sys/fs/cgroup/cpuacct/$1-$$" 2>/dev/null; then
            CG_ACCT=/sys/fs/cgroup/cpuacct/$1-$$
        fi
        [ -z "$CG_ACCT" ] || ACCT_FILE=cpuacct.usage
    fi
    local quota
    if [ -n "$CG_CPU" ]; then
        if [ "$BAL_QUOTA" = 1 ]; then quota=max; else quota=$(python3 -c "print(int(float('$BAL_QUOTA') * 10000))"); fi
        if [ -f "$CG_CPU/cpu.max" ]; then
            echo "$quota 10000" >"$CG_CPU/cpu.max"
        else
            echo 10000 >"$CG_CPU/cpu.cfs_period_us"
            [ "$quota" = max ] && quota=-1
            echo "$quota" >"$CG_CPU/cpu.cfs_quota_us"
        fi
    elif [ "$BAL_QUOTA" != 1 ]; then
        echo "error: BAL_QUOTA=$BAL_QUOTA needs a CPU cgroup (root); BAL_QUOTA=1 runs without" >&2
        exit 2
    fi
}

cpu_box_remove() {
    local g
    for g in "$CG_CPU" "$CG_ACCT"; do [ -z "$g" ] || rmdir "$g" 2>/dev/null || true; done
}

# stream_paths: the surge100 workload's seeded request stream (100,000
# requests, seed 1) as one path per line, what wrk_script replays.
stream_paths() {
    "$DL7" trace gen surge100 -o "$WORK/stream.trace" --requests 100000 --seed 1 2>/dev/null
    awk 'NR == 2 { n = $2 } NR > 2 && NR <= n + 2 { path[NR - 3] = $4 } NR > n + 2 && NF == 1 { print path[$1] }' \
        "$WORK/stream.trace"
}

# wrk_script: wrk's Lua script for the saturating benchmarks. Each request
# takes the next path of the file $PATHS names; done() prints the figures
# the scripts read, one `wrk-result` line.
wrk_script() {
    cat <<'EOF'
-- Each request takes the next path of the seeded stream; done() prints the
-- figures the script reads, one line.
local paths, i = {}, 0
for line in io.lines(os.getenv("PATHS")) do paths[#paths + 1] = line end
request = function()
    i = i % #paths + 1
    return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write
        + summary.errors.status + summary.errors.timeout
    io.write(string.format("wrk-result %d %d %.6f %.3f %.3f %.3f %d\n", summary.requests, summary.bytes,
        summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
        latency:percentile(99.9) / 1e3, errors))
end
EOF
}

# busy_ticks CPU: the CPU's non-idle clock ticks so far (/proc/stat).
busy_ticks() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
