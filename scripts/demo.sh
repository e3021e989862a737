#!/usr/bin/env bash
# The main job in one command: a local OpenSearch (or $SEQTAIL_URL), `init`, a producer writing
# events while two consumer groups run as bounded batch jobs, one run killed with SIGKILL half
# way and run again, then `groups describe` for both groups and a tally of produced, delivered,
# lost and redelivered events. Leaves nothing running.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

RATE="${DEMO_RATE:-1000}"         # events per second
DURATION="${DEMO_DURATION:-20}"   # seconds of producing
G1=event-processor-v1
G2=analytics-processor

started=""
work="$(mktemp -d)"
cleanup() {
    jobs -p | xargs -r kill 2>/dev/null || true
    wait 2>/dev/null || true
    if [[ -n "$started" ]]; then scripts/opensearch.sh stop >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== building seqtail (release)"
cargo build --release --quiet
B="$ROOT/target/release/seqtail"

if [[ -z "${SEQTAIL_URL:-}" ]]; then
    if ! SEQTAIL_URL="$(scripts/opensearch.sh status 2>/dev/null)"; then
        echo "== starting a local OpenSearch"
        SEQTAIL_URL="$(scripts/opensearch.sh start)"
        started=1
    fi
fi
export SEQTAIL_URL
export SEQTAIL_INDEX=seqtail-demo SEQTAIL_OFFSETS_INDEX=seqtail-demo-offsets
for i in seqtail-demo seqtail-demo-offsets seqtail-demo-offsets-history; do
    curl -s -XDELETE "$SEQTAIL_URL/$i" >/dev/null
done

echo "== seqtail init (5 shards) against $SEQTAIL_URL"
"$B" init --replicas 0

echo "== producing $RATE events/s for ${DURATION}s while both groups run as batch jobs"
"$B" -q produce --rate "$RATE" --duration "${DURATION}s" --id-prefix demo- --routing-field key \
    --payload-bytes 256 &
producer=$!

# A cron-like batch job: bounded, delivers to a file through --exec, exits.
job() { # GROUP [extra args]
    local group="$1"; shift
    "$B" -q run --group "$group" --batch-size 200 --max-batches 20 --lease-ttl 5s \
        --exec-timeout 4s --exec "cat >> '$work/$group.ndjson'" "$@" 2>>"$work/$group.log" || {
        local rc=$?
        # 75: the killed run's lease is still live; the schedule simply tries again later.
        [[ $rc -eq 75 ]] && echo "   $group: shards still leased by the killed run (exit 75), retrying later"
        [[ $rc -eq 75 ]] || { cat "$work/$group.log" >&2; exit "$rc"; }
    }
}

killed=""
t0=$SECONDS
while kill -0 "$producer" 2>/dev/null; do
    job "$G2"
    if [[ -z "$killed" && $((SECONDS - t0)) -ge $((DURATION / 2)) ]]; then
        # Half way: a run of G1 with a slow sink is killed with SIGKILL mid-batch.
        "$B" -q run --group "$G1" --batch-size 200 --max-batches 0 --lease-ttl 5s \
            --exec-timeout 4s --exec "cat >> '$work/$G1.ndjson'; sleep 0.3" 2>>"$work/$G1.log" &
        victim=$!
        sleep 1
        kill -9 "$victim"
        wait "$victim" 2>/dev/null || true
        killed=1
        echo "   killed a run of $G1 with SIGKILL after 1s (mid-batch, before its commit)"
    else
        job "$G1"
    fi
    sleep 1
done
wait "$producer"
echo "== producer done; final catch-up runs"
for group in "$G1" "$G2"; do
    for _ in $(seq 1 20); do
        if "$B" -q run --group "$group" --until-caught-up --max-batches 0 --lease-ttl 5s \
            --exec-timeout 4s --exec "cat >> '$work/$group.ndjson'" 2>>"$work/$group.log"; then
            break
        fi
        sleep 1
    done
done

for group in "$G1" "$G2"; do
    echo "== seqtail groups describe $group"
    "$B" groups describe "$group"
done

curl -s -XPOST "$SEQTAIL_URL/seqtail-demo/_refresh" >/dev/null
produced="$(curl -s "$SEQTAIL_URL/seqtail-demo/_count" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')"
python3 - "$produced" "$work/$G1.ndjson" "$work/$G2.ndjson" <<'PY'
import json, sys
produced = int(sys.argv[1])
parts, lost_any = [], 0
for path in sys.argv[2:]:
    ids = [json.loads(l)["id"] for l in open(path) if l.strip()]
    unique = set(ids)
    lost = produced - len(unique)
    lost_any += lost
    name = path.rsplit("/", 1)[1][:-len(".ndjson")]
    parts.append(f"{name} delivered {len(unique)} (lost {lost}, redelivered {len(ids) - len(unique)})")
print(f"demo: produced {produced} events; " + "; ".join(parts) + f"; lost {lost_any}")
sys.exit(1 if lost_any else 0)
PY
