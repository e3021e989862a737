#!/usr/bin/env bash
# Starts, stops and reports a real OpenSearch for development and tests.
#
#   scripts/opensearch.sh start [--nodes 1|3]   fetch (once), start, wait until healthy, print URL
#   scripts/opensearch.sh status                print the URL if a started cluster answers
#   scripts/opensearch.sh stop                  stop the nodes this script started
#
# The server is the integ-test zip from Maven Central, cached under .cache/ (git-ignored).
# OpenSearch refuses to run as root, so nodes run as the unprivileged user `seqtail-os`.
# With --nodes N > 1 the printed URL is the comma-separated list of every node (a valid --url).
# Settings: OPENSEARCH_VERSION (default 2.19.6), SEQTAIL_CACHE (default <repo>/.cache),
# SEQTAIL_OS_NAME (a second, independent cluster beside the default one, e.g. `trio`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${OPENSEARCH_VERSION:-2.19.6}"
CACHE="${SEQTAIL_CACHE:-$ROOT/.cache}"
HOME_DIR="$CACHE/opensearch-$VERSION"
RUN_DIR="$CACHE/opensearch-run${SEQTAIL_OS_NAME:+-$SEQTAIL_OS_NAME}"
STATE="$RUN_DIR/state"
OS_USER="${SEQTAIL_OS_USER:-seqtail-os}"
HEAP="${OPENSEARCH_HEAP:-512m}"

log() { echo "opensearch.sh: $*" >&2; }
die() { log "$*"; exit 1; }

java_home() {
    local major="${VERSION%%.*}"
    if [[ -n "${OPENSEARCH_JAVA_HOME:-}" ]]; then
        echo "$OPENSEARCH_JAVA_HOME"
    elif [[ "$major" -ge 3 ]]; then
        # 3.x needs Java 21+: use the newest Temurin JDK installed beside the system Java.
        local jdk
        jdk="$(find /usr/lib/jvm -maxdepth 1 -name 'temurin-*-jdk-*' 2>/dev/null | sort -V | tail -1)"
        [[ -n "$jdk" ]] || die "OpenSearch $VERSION needs Java 21+; set OPENSEARCH_JAVA_HOME"
        echo "$jdk"
    else
        dirname "$(dirname "$(readlink -f "$(command -v java)")")"
    fi
}

fetch() {
    [[ -x "$HOME_DIR/bin/opensearch" ]] && return 0
    command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch OpenSearch"
    mkdir -p "$CACHE/download"
    local zip="$CACHE/download/opensearch-$VERSION.zip"
    if [[ ! -s "$zip" ]]; then
        log "fetching org.opensearch.distribution.integ-test-zip:opensearch:$VERSION with Maven"
        mvn -q -B dependency:copy \
            "-Dartifact=org.opensearch.distribution.integ-test-zip:opensearch:$VERSION:zip" \
            "-DoutputDirectory=$CACHE/download" >&2 \
            || die "Maven could not fetch OpenSearch $VERSION"
    fi
    local tmp="$CACHE/unpack.$$"
    rm -rf "$tmp" && mkdir -p "$tmp"
    if command -v unzip >/dev/null; then
        unzip -q "$zip" -d "$tmp"
    else
        python3 -m zipfile -e "$zip" "$tmp"
    fi
    rm -rf "$HOME_DIR"
    mv "$tmp/opensearch-$VERSION" "$HOME_DIR"
    rm -rf "$tmp"
    chmod +x "$HOME_DIR"/bin/*
}

ensure_user() {
    if ! id "$OS_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$OS_USER" \
            || die "cannot create user $OS_USER (run as root, or set SEQTAIL_OS_USER to an existing user)"
    fi
    # The user must be able to reach the install under the repository.
    local dir="$CACHE"
    while [[ "$dir" != "/" ]]; do
        chmod o+x "$dir" 2>/dev/null || true
        dir="$(dirname "$dir")"
    done
    chmod -R o+rX "$HOME_DIR"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

healthy() { # URL [min_nodes]
    local url="$1" nodes="${2:-1}"
    curl -fsS --max-time 2 "$url/_cluster/health?wait_for_nodes=$nodes&timeout=1s" 2>/dev/null \
        | grep -Eq '"status":"(green|yellow)"'
}

status() {
    [[ -f "$STATE" ]] || return 1
    local URL="" URLS="" NODES=1
    # shellcheck disable=SC1090
    source "$STATE"
    healthy "$URL" "$NODES" || return 1
    if [[ "$NODES" -gt 1 ]]; then echo "$URLS"; else echo "$URL"; fi
}

start() {
    local nodes=1
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --nodes) nodes="${2:?--nodes needs 1 or 3}"; shift 2 ;;
            --nodes=*) nodes="${1#--nodes=}"; shift ;;
            *) die "unknown option $1" ;;
        esac
    done
    [[ "$nodes" =~ ^[1-9]$ ]] || die "--nodes must be 1 to 9"
    local URL="" URLS="" NODES=1
    if [[ -f "$STATE" ]]; then
        # shellcheck disable=SC1090
        source "$STATE"
        if [[ "$NODES" == "$nodes" ]] && healthy "$URL" "$nodes"; then
            log "reusing the running cluster ($nodes node(s))"
            if [[ "$nodes" -gt 1 ]]; then echo "$URLS"; else echo "$URL"; fi
            return 0
        fi
        stop >/dev/null 2>&1 || true
    fi
    fetch
    ensure_user
    local jhome
    jhome="$(java_home)"
    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR"
    local http_ports=() transport_ports=() seeds=() masters=()
    for ((i = 0; i < nodes; i++)); do
        http_ports+=("$(free_port)")
        transport_ports+=("$(free_port)")
        seeds+=("127.0.0.1:${transport_ports[$i]}")
        masters+=("node-$i")
    done
    local cluster="seqtail-test-${SEQTAIL_OS_NAME:-main}-$$"
    for ((i = 0; i < nodes; i++)); do
        local nd="$RUN_DIR/node-$i"
        mkdir -p "$nd/data" "$nd/logs" "$nd/config"
        cp -r "$HOME_DIR/config/." "$nd/config/"
        cat >"$nd/config/opensearch.yml" <<YML
cluster.name: $cluster
node.name: node-$i
network.host: 127.0.0.1
http.port: ${http_ports[$i]}
transport.port: ${transport_ports[$i]}
path.data: $nd/data
path.logs: $nd/logs
cluster.routing.allocation.disk.threshold_enabled: false
action.auto_create_index: true
YML
        if [[ "$nodes" -eq 1 ]]; then
            echo "discovery.type: single-node" >>"$nd/config/opensearch.yml"
        else
            {
                echo "discovery.seed_hosts: [$(IFS=,; echo "${seeds[*]}")]"
                echo "cluster.initial_cluster_manager_nodes: [$(IFS=,; echo "${masters[*]}")]"
            } >>"$nd/config/opensearch.yml"
        fi
        # Heap size, and absolute paths for the files jvm.options writes relative to the home.
        sed -i -e 's/^-Xms.*/-Xms'"$HEAP"'/' -e 's/^-Xmx.*/-Xmx'"$HEAP"'/' \
            -e "s#file=logs/#file=$nd/logs/#" -e "s#ErrorFile=logs/#ErrorFile=$nd/logs/#" \
            -e "s#HeapDumpPath=data#HeapDumpPath=$nd/data#" "$nd/config/jvm.options"
        chown -R "$OS_USER" "$nd"
        # jvm.options writes gc.log and heap dumps relative to the working directory.
        (cd "$nd" && runuser -u "$OS_USER" -- env -i PATH="/usr/bin:/bin" \
            OPENSEARCH_JAVA_HOME="$jhome" OPENSEARCH_PATH_CONF="$nd/config" \
            "$HOME_DIR/bin/opensearch" -d -p "$nd/pid" >"$nd/logs/stdout.log" 2>&1) \
            || { cat "$nd/logs/stdout.log" >&2; die "node-$i did not start"; }
    done
    local url="http://127.0.0.1:${http_ports[0]}"
    local urls
    urls="$(for p in "${http_ports[@]}"; do printf 'http://127.0.0.1:%s,' "$p"; done)"
    {
        echo "URL=$url"
        echo "URLS=${urls%,}"
        echo "NODES=$nodes"
    } >"$STATE"
    log "waiting for $nodes node(s) at $url"
    for _ in $(seq 1 180); do
        if healthy "$url" "$nodes"; then
            log "OpenSearch $VERSION is up: $nodes node(s) at $url"
            if [[ "$nodes" -gt 1 ]]; then echo "${urls%,}"; else echo "$url"; fi
            return 0
        fi
        for ((i = 0; i < nodes; i++)); do
            local pidf="$RUN_DIR/node-$i/pid"
            if [[ -f "$pidf" ]] && ! kill -0 "$(cat "$pidf")" 2>/dev/null; then
                tail -50 "$RUN_DIR/node-$i/logs/$cluster.log" >&2 2>/dev/null || true
                die "node-$i exited during startup (logs in $RUN_DIR/node-$i/logs)"
            fi
        done
        sleep 1
    done
    die "OpenSearch did not become healthy within 180s (logs in $RUN_DIR)"
}

stop() {
    local pids=()
    for pidf in "$RUN_DIR"/node-*/pid; do
        [[ -f "$pidf" ]] || continue
        pids+=("$(cat "$pidf")")
    done
    if [[ ${#pids[@]} -eq 0 ]]; then
        log "nothing to stop"
        rm -f "$STATE"
        return 0
    fi
    kill "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 60); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [[ $alive -eq 0 ]] && break
        sleep 0.5
    done
    kill -9 "${pids[@]}" 2>/dev/null || true
    rm -f "$STATE" "$RUN_DIR"/node-*/pid
    log "stopped ${#pids[@]} node(s)"
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) stop ;;
    status) status || { log "not running"; exit 1; } ;;
    *) echo "usage: $0 start [--nodes N] | status | stop" >&2; exit 64 ;;
esac
