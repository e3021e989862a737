#!/usr/bin/env bash
# Starts and stops the real side services the tests use besides OpenSearch, on loopback:
#   - a Prometheus Pushgateway (Debian package prometheus-pushgateway)
#   - nginx as a TLS + basic-auth + client-certificate proxy in front of OpenSearch, with a CA,
#     server and client certificates generated here by openssl
#
#   scripts/services.sh start OPENSEARCH_URL   prints `export VAR=...` lines for the tests
#   scripts/services.sh stop
#
# Tools are installed by scripts/install-test-deps.sh. State lives in .cache/services.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${SEQTAIL_CACHE:-$ROOT/.cache}/services"

log() { echo "services.sh: $*" >&2; }
die() { log "$*"; exit 1; }
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_port() { # PORT
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

certs() {
    local d="$DIR/tls"
    mkdir -p "$d"
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=seqtail test CA" \
        -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=some other CA" \
        -keyout wrong-ca.key -out wrong-ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=seqtail-client" -keyout client.key -out client.csr 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile client.ext -out client.crt 2>/dev/null
    # A bundle: the CA plus an unrelated certificate, to prove every certificate is read.
    cat wrong-ca.crt ca.crt >bundle.crt
    # The password is generated per start; tests read it from the file.
    python3 -c 'import secrets; print("pw-" + secrets.token_hex(12))' >password
    printf 'seqtail:%s\n' "$(openssl passwd -apr1 -in password)" >htpasswd
    chmod 755 "$d" && chmod 644 "$d"/*
    cd - >/dev/null
}

start() {
    local os_url="${1:?usage: services.sh start OPENSEARCH_URL}"
    stop >/dev/null 2>&1 || true
    rm -rf "$DIR" && mkdir -p "$DIR" && chmod 755 "$DIR"
    command -v prometheus-pushgateway >/dev/null || die "prometheus-pushgateway missing: run scripts/install-test-deps.sh"
    command -v nginx >/dev/null || die "nginx missing: run scripts/install-test-deps.sh"

    local pg_port
    pg_port="$(free_port)"
    prometheus-pushgateway --web.listen-address="127.0.0.1:$pg_port" >"$DIR/pushgateway.log" 2>&1 &
    echo $! >"$DIR/pushgateway.pid"
    wait_port "$pg_port" || die "the Pushgateway did not start (see $DIR/pushgateway.log)"

    certs
    local tls_port
    tls_port="$(free_port)"
    mkdir -p "$DIR/nginx/tmp"
    cat >"$DIR/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $DIR/nginx/nginx.pid;
error_log $DIR/nginx/error.log;
events { worker_connections 64; }
http {
    access_log $DIR/nginx/access.log;
    client_body_temp_path $DIR/nginx/tmp/body;
    proxy_temp_path $DIR/nginx/tmp/proxy;
    fastcgi_temp_path $DIR/nginx/tmp/fastcgi;
    uwsgi_temp_path $DIR/nginx/tmp/uwsgi;
    scgi_temp_path $DIR/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$tls_port ssl;
        ssl_certificate $DIR/tls/server.crt;
        ssl_certificate_key $DIR/tls/server.key;
        ssl_client_certificate $DIR/tls/ca.crt;
        ssl_verify_client on;
        auth_basic "seqtail test";
        auth_basic_user_file $DIR/tls/htpasswd;
        client_max_body_size 100m;
        location / {
            proxy_pass $os_url;
            proxy_set_header Authorization "";
        }
    }
}
CONF
    chmod -R a+rX "$DIR/nginx"
    nginx -c "$DIR/nginx/nginx.conf" -p "$DIR/nginx" 2>"$DIR/nginx/start.log" \
        || { cat "$DIR/nginx/start.log" >&2; die "nginx did not start"; }
    wait_port "$tls_port" || die "nginx is not listening (see $DIR/nginx/error.log)"

    echo "export SEQTAIL_TEST_PUSHGATEWAY=http://127.0.0.1:$pg_port"
    echo "export SEQTAIL_TEST_TLS_URL=https://127.0.0.1:$tls_port"
    echo "export SEQTAIL_TEST_TLS_DIR=$DIR/tls"
}

stop() {
    if [[ -f "$DIR/nginx/nginx.pid" ]]; then
        kill "$(cat "$DIR/nginx/nginx.pid")" 2>/dev/null || true
    fi
    if [[ -f "$DIR/pushgateway.pid" ]]; then
        kill "$(cat "$DIR/pushgateway.pid")" 2>/dev/null || true
    fi
    rm -f "$DIR/nginx/nginx.pid" "$DIR/pushgateway.pid"
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) stop ;;
    *) echo "usage: $0 start OPENSEARCH_URL | stop" >&2; exit 64 ;;
esac
