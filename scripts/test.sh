#!/usr/bin/env bash
# The test command: formatting, lints, unit tests, every integration test against a real
# OpenSearch, a real Pushgateway and a real nginx (TLS, basic auth, client certificates), and
# the offline checks of the deployment units. Uses SEQTAIL_TEST_URL if set; otherwise starts
# OpenSearch with scripts/opensearch.sh. Stops everything it started.
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
echo "== starting the Pushgateway and the nginx TLS proxy"
eval "$(scripts/services.sh start "$SEQTAIL_TEST_URL")"

echo "== cargo test against $SEQTAIL_TEST_URL"
cargo test --locked --all-targets
cargo test --locked --doc

echo "== deployment units"
scripts/check-deploy.sh
