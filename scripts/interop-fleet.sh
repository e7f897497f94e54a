#!/usr/bin/env bash
# The fleet against real servers: nats-server (JetStream, MQTT listener over
# mutual TLS), PostgreSQL 15 (a throwaway cluster, initdb in a temp dir, run
# as the unprivileged `postgres` user) and real `coldgate run` gateways.
#
#   scripts/interop-fleet.sh            # from the workspace root
#
# Installs nats-server and postgresql-15 (apt-get) when missing and fails
# loudly if it cannot; the tests themselves fail (never skip) when a server
# is not there. Then checks the fleet's systemd unit offline.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "interop-fleet: FATAL: $*" >&2; exit 1; }

need=()
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15 postgresql-contrib)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
if [ "${#need[@]}" -gt 0 ]; then
    echo "interop-fleet: installing ${need[*]}"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" \
        || die "cannot install ${need[*]}"
fi
id postgres >/dev/null 2>&1 || die "no postgres user (the postgresql-15 package makes it)"
echo "interop-fleet: $(nats-server --version), $(/usr/lib/postgresql/15/bin/postgres --version)"

# Delivery, custody across two real gateways, exposure across their legs.
cargo test -p coldgate-fleet --test e2e --test e2e_custody --test e2e_exposure \
    -- --ignored --test-threads 1
# Custody against PostgreSQL alone: arrival orders and two workers racing;
# the EPCIS export of a two-gateway journey (module, CLI, HTTP).
cargo test -p coldgate-fleet --test custody --test epcis -- --ignored --test-threads 1

bash scripts/check-fleet-unit.sh
