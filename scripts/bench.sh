#!/usr/bin/env bash
# Benchmark, not a test: measures seqtail beside its baselines in one run on one machine and
# prints a table (events/s, CPU seconds, peak RSS, events lost, events re-read, binary size).
#
#   scripts/bench.sh                      N = 100k and 1M (BENCH_SIZES="100000 1000000")
#   BENCH_SIZES=20000 scripts/bench.sh    a quick look
#
# Baselines (examples/baselines.rs): the raw-read ceiling (same per-shard _seq_no pages through
# the same client, no sink, no commit), the seed's timestamp + in-memory-set design, and the
# naive single-`last` _seq_no loop of DESIGN.md §2.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SIZES="${BENCH_SIZES:-100000 1000000}"
BATCH="${BENCH_BATCH:-500}"
REPS="${BENCH_REPS:-5}"
WRITERS_SECS="${BENCH_WRITERS_SECS:-15}"
[[ -x /usr/bin/time ]] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

work="$(mktemp -d)"
started=""
cleanup() {
    jobs -p | xargs -r kill 2>/dev/null || true
    if [[ -n "$started" ]]; then scripts/opensearch.sh stop >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== building (release)" >&2
cargo build --release --quiet --bin seqtail --example baselines
B="$ROOT/target/release/seqtail"
BASE="$ROOT/target/release/examples/baselines"
if [[ -z "${SEQTAIL_URL:-}" ]]; then
    if ! SEQTAIL_URL="$(scripts/opensearch.sh status 2>/dev/null)"; then
        SEQTAIL_URL="$(OPENSEARCH_HEAP="${OPENSEARCH_HEAP:-1g}" scripts/opensearch.sh start)"
        started=1
    fi
fi
export SEQTAIL_URL SEQTAIL_OFFSETS_INDEX=bench-offsets
unset SEQTAIL_INDEX

# measure NAME CMD...: runs CMD, keeps its stdout in $work/NAME.out and "wall user sys maxrss_kb"
measure() {
    local name="$1"; shift
    /usr/bin/time -f "%e %U %S %M" -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err" \
        || { cat "$work/$name.err" >&2; echo "bench: $name failed" >&2; exit 1; }
}
# median NAME: copies the run with the median wall time among NAME-1..REPS to NAME.
median() {
    local best
    best="$(for f in "$work/$1"-[0-9]*.time; do echo "$(awk '{print $1}' "$f") ${f%.time}"; done \
        | sort -n | awk -v m="$(( (REPS + 1) / 2 ))" 'NR == m {print $2}')"
    cp "$best.time" "$work/$1.time"
    cp "$best.out" "$work/$1.out"
}
cpu() { awk '{printf "%.2f", $2 + $3}' "$work/$1.time"; }
rss_mib() { awk '{printf "%.1f", $4 / 1024}' "$work/$1.time"; }
rate() { awk -v n="$2" '{printf "%.0f", n / $1}' "$work/$1.time"; }
json() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$work/$1.out" "$2"; }
drop() { for i in "$@"; do curl -s -XDELETE "$SEQTAIL_URL/$i" >/dev/null; done; }

drop bench-offsets bench-offsets-history
# The offsets and history indices exist before anything is measured, as they do in production.
"$B" -q --index bench-setup init --replicas 0 >/dev/null
drop bench-setup
declare -A R
for n in $SIZES; do
    idx="bench-$n"
    drop "$idx"
    "$B" -q --index "$idx" init --replicas 0 >/dev/null
    echo "== ingesting $n events (5 shards, 512-byte payload)" >&2
    measure "produce-$n" "$B" -q --index "$idx" produce --count "$n" --bulk-size 2000 \
        --payload-bytes 512 --id-prefix b-
    curl -s -XPOST "$SEQTAIL_URL/$idx/_refresh" >/dev/null
    curl -s -XPOST "$SEQTAIL_URL/$idx/_forcemerge?max_num_segments=1" >/dev/null || true
    echo "== reading $n events: raw ceiling, seqtail, seed design" >&2
    # Alternate the two readers REPS times and keep the median run of each, so the ratio holds
    # on a noisy machine. Each seqtail repetition reads the whole index from the start.
    for rep in $(seq 1 "$REPS"); do
        measure "raw-$n-$rep" "$BASE" raw --url "$SEQTAIL_URL" --index "$idx" --batch-size "$BATCH"
        "$B" -q offsets delete "bench-$n" --execute >/dev/null 2>&1
        measure "seqtail-$n-$rep" "$B" -q --index "$idx" run --group "bench-$n" --sink null \
            --max-batches 0 --batch-size "$BATCH"
    done
    median "raw-$n"
    median "seqtail-$n"
    measure "seed-$n" "$BASE" seed --url "$SEQTAIL_URL" --index "$idx" --batch-size "$BATCH"
    measure "seed-restart-$n" "$BASE" seed --url "$SEQTAIL_URL" --index "$idx" --batch-size "$BATCH"
    measure "seqtail-restart-$n" "$B" -q --index "$idx" run --group "bench-$n" --sink stdout --max-batches 0
    R[raw_rate_$n]=$(awk -v n="$(json "raw-$n" events)" '{printf "%.0f", n / $1}' "$work/raw-$n.time")
    R[raw_inner_$n]=$(python3 -c "import json;d=json.load(open('$work/raw-$n.out'));print(round(d['events']/d['seconds']))")
    R[seq_rate_$n]=$(rate "seqtail-$n" "$n")
    # The ratio of each alternating pair, then the median: drift on a noisy machine hits both
    # members of a pair alike.
    R[ratio_$n]=$(for rep in $(seq 1 "$REPS"); do
        paste "$work/raw-$n-$rep.time" "$work/seqtail-$n-$rep.time" | awk '{printf "%.3f\n", $1 / $5}'
    done | sort -n | awk -v m="$(( (REPS + 1) / 2 ))" 'NR == m {printf "%.2f", $1}')
    R[ratios_$n]=$(for rep in $(seq 1 "$REPS"); do
        paste "$work/raw-$n-$rep.time" "$work/seqtail-$n-$rep.time" | awk '{printf "%.2f ", $1 / $5}'
    done)
    R[seed_rate_$n]=$(rate "seed-$n" "$(json "seed-$n" delivered)")
    R[prod_rate_$n]=$(rate "produce-$n" "$n")
    R[seed_reread_$n]=$(json "seed-restart-$n" delivered)
    R[seq_reread_$n]=$(grep -c . "$work/seqtail-restart-$n.out" || true)
    drop "$idx"
done

echo "== 4 concurrent writers x ${WRITERS_SECS}s at 500 events/s each, 5 shards, while all three read" >&2
idx=bench-writers
drop "$idx"
"$B" -q --index "$idx" init --replicas 0 >/dev/null
writers=()
for w in 1 2 3 4; do
    "$B" -q --index "$idx" produce --rate 500 --duration "${WRITERS_SECS}s" --payload-bytes 512 \
        --id-prefix "w$w-" --bulk-size 200 &
    writers+=($!)
done
"$BASE" seed --url "$SEQTAIL_URL" --index "$idx" --follow-secs "$((WRITERS_SECS + 2))" --count-lost >"$work/seed-w.out" &
seedp=$!
"$BASE" naive --url "$SEQTAIL_URL" --index "$idx" --follow-secs "$((WRITERS_SECS + 2))" --count-lost >"$work/naive-w.out" &
naivep=$!
runs=0
while kill -0 "${writers[0]}" 2>/dev/null; do
    "$B" -q --index "$idx" run --group writers --max-batches 0 --batch-size 200 >>"$work/seqtail-w.ndjson"
    runs=$((runs + 1))
    sleep 0.2
done
wait "${writers[@]}"
"$B" -q --index "$idx" run --group writers --until-caught-up --max-batches 0 >>"$work/seqtail-w.ndjson"
wait "$seedp" "$naivep"
"$BASE" ids --url "$SEQTAIL_URL" --index "$idx" >"$work/ids-w.txt"
R[w_written]=$(wc -l <"$work/ids-w.txt")
R[seq_lost_w]=$(python3 - "$work/ids-w.txt" "$work/seqtail-w.ndjson" <<'PY'
import json, sys
ids = set(l.strip() for l in open(sys.argv[1]) if l.strip())
got = set(json.loads(l)["id"] for l in open(sys.argv[2]) if l.strip())
print(len(ids - got))
PY
)
R[seed_lost_w]=$(json seed-w lost)
R[naive_lost_w]=$(json naive-w lost)
drop "$idx" bench-offsets bench-offsets-history

size=$(stat -c %s "$B")
first="${SIZES%% *}"
last="${SIZES##* }"
echo
echo "seqtail benchmark, $(date -u +%Y-%m-%d), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, OpenSearch $(curl -s "$SEQTAIL_URL" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"]["number"])') single node, batch $BATCH, median of $REPS alternating runs (ratio: median of the pairs' ratios)"
echo
printf '| %-44s | %-14s | %-14s | %-14s | %-12s |\n' "figure" "seqtail" "raw ceiling" "seed design" "naive loop"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..16})" "$(printf -- '-%.0s' {1..16})" "$(printf -- '-%.0s' {1..16})" "$(printf -- '-%.0s' {1..14})"
for n in $SIZES; do
    ratio="${R[ratio_$n]}"
    printf '| %-44s | %-14s | %-14s | %-14s | %-12s |\n' "events/s reading $n (ratio to ceiling)" "${R[seq_rate_$n]} ($ratio)" "${R[raw_rate_$n]}" "${R[seed_rate_$n]}" "-"
    printf '| %-44s | %-14s | %-14s | %-14s | %-12s |\n' "CPU seconds for $n events" "$(cpu "seqtail-$n")" "$(cpu "raw-$n")" "$(cpu "seed-$n")" "-"
    printf '| %-44s | %-14s | %-14s | %-14s | %-12s |\n' "peak RSS MiB for $n events" "$(rss_mib "seqtail-$n")" "$(rss_mib "raw-$n")" "$(rss_mib "seed-$n")" "-"
    printf '| %-44s | %-14s | %-14s | %-14s | %-12s |\n' "events re-read by a restart after $n" "${R[seq_reread_$n]}" "-" "${R[seed_reread_$n]}" "-"
done
printf '| %-44s | %-14s | %-14s | %-14s | %-12s |\n' "events lost, 4 writers, ${R[w_written]} events" "${R[seq_lost_w]} ($runs runs)" "-" "${R[seed_lost_w]}" "${R[naive_lost_w]}"
printf '| %-44s | %-14s | %-14s | %-14s | %-12s |\n' "release binary size" "$(awk -v s="$size" 'BEGIN{printf "%.2f MiB", s/1048576}')" "-" "-" "-"
echo
for n in $SIZES; do
    echo "ingest: seqtail produce wrote $n events at ${R[prod_rate_$n]} events/s"
done
for n in $SIZES; do
    echo "seqtail/ceiling ratio of each alternating pair at $n events: ${R[ratios_$n]}(median ${R[ratio_$n]})"
done
echo "peak RSS of seqtail: $(rss_mib "seqtail-$first") MiB at $first events vs $(rss_mib "seqtail-$last") MiB at $last events; seed design: $(rss_mib "seed-$first") vs $(rss_mib "seed-$last") MiB"
