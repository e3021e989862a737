#!/usr/bin/env bash
# The test command: formatting, lints, unit tests, every integration test against a real
# OpenSearch, a real Pushgateway and a real nginx (TLS, basic auth, client certificates), and
# the offline checks of the deployment units. Uses SEQTAIL_TEST_URL if set; otherwise starts
# OpenSearch with scripts/opensearch.sh. A second, 3-node cluster serves the test where replicas
# matter. Stops everything it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== installing test tools if missing"
scripts/install-test-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --all-targets --locked -- -D warnings

started=""
cleanup() {
    scripts/services.sh stop >/dev/null 2>&1 || true
    # The cluster test kills a node, so this cluster is never reused.
    SEQTAIL_OS_NAME=trio scripts/opensearch.sh stop >/dev/null 2>&1 || true
    if [[ -n "$started" ]]; then
        scripts/opensearch.sh stop || true
    fi
}
trap cleanup EXIT

if [[ -z "${SEQTAIL_TEST_URL:-}" ]]; then
    if url="$(scripts/opensearch.sh status 2>/dev/null)"; then
        echo "== using the running OpenSearch at $url"
    else
        echo "== starting OpenSearch"
        url="$(scripts/opensearch.sh start)"
        started=1
    fi
    export SEQTAIL_TEST_URL="$url"
fi
echo "== starting a 3-node cluster for the replica and failover test"
SEQTAIL_TEST_CLUSTER_URLS="$(SEQTAIL_OS_NAME=trio scripts/opensearch.sh start --nodes 3)"
export SEQTAIL_TEST_CLUSTER_URLS
export SEQTAIL_TEST_CLUSTER_DIR="${SEQTAIL_CACHE:-$PWD/.cache}/opensearch-run-trio"
echo "== starting the Pushgateway and the nginx TLS proxy"
eval "$(scripts/services.sh start "$SEQTAIL_TEST_URL")"

echo "== cargo test against $SEQTAIL_TEST_URL"
cargo test --locked --all-targets
cargo test --locked --doc

echo "== deployment units"
scripts/check-deploy.sh
