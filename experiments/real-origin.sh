#!/usr/bin/env bash
# experiments/real-origin.toml in front of nginx: materializes the surge100
# catalog, serves it with one nginx on 127.0.0.1:8081 (its own prefix and
# config in a scratch folder, stopped by its pid afterwards), and runs the
# sweep. OUT (default reports/real-origin-latest, git-ignored: never over the
# committed reports/real-origin/) is the sweep's folder; beside its
# report the script writes nginx.txt: the requests nginx served, by status
# and method. Installs nginx-light if nginx is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
DL7=${DL7:-$PWD/target/release/dl7}
WORK=$(mktemp -d)
PIDS=()
. experiments/real-lib.sh
trap 'stop_all; rm -rf "$WORK"' EXIT

PORT=8081 # the experiment file's `[real] origin`
if python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$PORT))!=0)"; then
    echo "error: 127.0.0.1:$PORT is taken; experiments/real-origin.toml's origin must be this script's nginx" >&2
    exit 1
fi
need nginx nginx-light
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

"$DL7" trace materialize surge100 "$WORK/www"
mkdir -p "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    types { text/html html; image/gif gif; image/jpeg jpg; image/png png; text/css css; application/javascript js; }
    default_type application/octet-stream;
    log_format plain '\$status \$request_method';
    access_log $WORK/nginx/access.log plain;
    sendfile on;
    keepalive_requests 100000;
    client_body_temp_path $WORK/nginx/tmp;
    proxy_temp_path $WORK/nginx/tmp;
    fastcgi_temp_path $WORK/nginx/tmp;
    uwsgi_temp_path $WORK/nginx/tmp;
    scgi_temp_path $WORK/nginx/tmp;
    server { listen 127.0.0.1:$PORT; root $WORK/www; }
}
CONF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
PIDS+=("$!")
wait_port "$PORT"
echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*\///') on 127.0.0.1:$PORT serving $WORK/www"
OUT=${OUT:-reports/real-origin-latest}
"$DL7" sweep experiments/real-origin.toml --out "$OUT"
stop_all
{
    echo "# requests nginx $("$NGINX" -v 2>&1 | sed 's/.*\///') served during experiments/real-origin.sh ($(date -u +%F)), by status and method"
    sort "$WORK/nginx/access.log" | uniq -c | awk '{print $2, $3, $1}'
} | tee "$OUT/nginx.txt"
