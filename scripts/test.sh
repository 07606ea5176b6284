#!/usr/bin/env bash
# The project's test command: installs the real software the tests run against when any is missing
# (the PowerDNS producers and DNS tools of tests/interop.rs, ClickHouse's server for
# tests/clickhouse.rs, Chromium for tests/ui.rs; chdb from PyPI, a current ClickHouse engine in
# process), then `cargo test --release` from the repository root.
# Arguments go to cargo test, e.g. `scripts/test.sh --test interop`.
# Meant for Debian bookworm as root (or with sudo), with cargo installed and ../shared beside the repo.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

packages=(dnsdist pdns-recursor pdns-server pdns-backend-bind pdns-tools dnsperf dnsutils netcat-openbsd chromium clickhouse-server python3-pip openssl)
# One program (or file) per package: if all are there, nothing is installed.
needed=(dnsdist pdns_recursor rec_control pdns_server dnspcap2protobuf dnsperf dig nc chromium clickhouse-server python3 openssl)

have() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    sudo=(false)
fi

missing=()
for p in "${needed[@]}"; do
    have "$p" || missing+=("$p")
done
# tests/clickhouse.rs loads the modern schema's batches into chdb (ClickHouse 26.x in process),
# which pip installs.
if ! python3 -c 'import chdb' >/dev/null 2>&1 && ! python3 -m pip --version >/dev/null 2>&1; then
    missing+=("python3 -m pip")
fi
if ! compgen -G '/usr/lib/*/pdns/libbindbackend.so' >/dev/null; then
    missing+=(libbindbackend.so)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    echo "test.sh: missing ${missing[*]}; installing ${packages[*]}" >&2
    if [ "${sudo[*]}" = false ]; then
        echo "test.sh: need root (or sudo) to install ${packages[*]}" >&2
        exit 1
    fi
    # The tests start the servers they need, privately on loopback: keep the packages from
    # starting system services of their own (on ports 53, 8123, ...) while they install, as a
    # container's policy-rc.d does; one that is already there is left alone.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        trap '"${sudo[@]}" rm -f "$policy"' EXIT
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${packages[@]}"
    if [ "$(trap -p EXIT)" ]; then
        "${sudo[@]}" rm -f "$policy"
        trap - EXIT
    fi
fi

if ! python3 -c 'import chdb' >/dev/null 2>&1; then
    echo "test.sh: installing chdb from PyPI" >&2
    python3 -m pip install --quiet chdb ||
        python3 -m pip install --quiet --break-system-packages chdb
fi

if [ ! -d "$root/../shared/samples" ]; then
    echo "test.sh: warning: $root/../shared/samples not found; the sample-based tests will fail" >&2
fi

if ! have node || ! have npm; then
    echo "test.sh: the browser tests need Node.js and npm (node 18 or later)" >&2
    exit 1
fi

# The browser tests drive Debian's chromium with playwright-core from npm (no browser download).
if [ ! -d "$root/tests/browser/node_modules/playwright-core" ]; then
    (cd "$root/tests/browser" && npm ci --no-audit --no-fund)
fi

cd "$root"
exec cargo test --release "$@"
