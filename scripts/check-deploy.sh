#!/usr/bin/env bash
# Validates the deployment units offline with the real tools (installed by
# scripts/install-test-deps.sh): kubernetes-validate --strict, systemd-analyze verify and
# security, promtool check/test rules, shellcheck on every script, hadolint on the Dockerfile.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# systemd-analyze security prints exposure 0-10 but --threshold counts on a 0-100 scale.
SECURITY_THRESHOLD="${SECURITY_THRESHOLD:-25}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail=0
step() { echo "== $*"; }

step "shellcheck"
shellcheck -x scripts/*.sh .ci/run || fail=1

step "kubernetes-validate --strict"
kubernetes-validate --strict cron/configmap.yaml cron/secret.example.yaml cron/cronjob.yaml \
    cron/job-indexed.yaml || fail=1
python3 - <<'PY' || fail=1
import os, sys
# kustomization.yaml is kustomize's own kind: check that every resource it names exists.
text = open("cron/kustomization.yaml").read()
names = [l.strip()[2:] for l in text.splitlines() if l.strip().startswith("- ")]
missing = [n for n in names if not os.path.exists(os.path.join("cron", n))]
print("kustomization resources:", ", ".join(names))
sys.exit(f"missing: {missing}" if missing else 0)
PY

step "systemd-analyze verify"
# verify needs the ExecStart binary to exist: point the unit at a temporary copy.
cargo build --quiet --bin seqtail
mkdir -p "$work/bin"
cp target/debug/seqtail "$work/bin/seqtail"
sed "s#/usr/local/bin/seqtail#$work/bin/seqtail#" cron/seqtail.service >"$work/seqtail.service"
cp cron/seqtail.timer "$work/seqtail.timer"
out="$(systemd-analyze verify "$work/seqtail.service" "$work/seqtail.timer" 2>&1)" || { echo "$out"; fail=1; }
# Some mistakes are only warnings: any line about our units fails the check.
if grep -E "seqtail\.(service|timer)" <<<"$out"; then fail=1; fi

step "systemd-analyze security (threshold $SECURITY_THRESHOLD/100)"
systemd-analyze security --offline=true --threshold="$SECURITY_THRESHOLD" "$work/seqtail.service" \
    | tail -3 || fail=1

step "promtool check rules / test rules"
promtool check rules cron/prometheus-rules.yaml || fail=1
(cd cron && promtool test rules prometheus-rules.test.yaml) || fail=1

step "hadolint"
hadolint Dockerfile || fail=1

if [[ $fail -ne 0 ]]; then
    echo "check-deploy: FAILED"
    exit 1
fi
echo "check-deploy: all deployment units valid"
