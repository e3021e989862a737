#!/usr/bin/env bash
# The test command: formatting, lints, unit tests and every integration test against a real
# OpenSearch. Uses SEQTAIL_TEST_URL if set; otherwise starts one with scripts/opensearch.sh and
# stops it afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --all-targets --locked -- -D warnings

started=""
cleanup() {
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
echo "== cargo test against $SEQTAIL_TEST_URL"
cargo test --locked --all-targets
cargo test --locked --doc
