#!/usr/bin/env bash
# Runs the broker recipe of docs/broker.md as written: every fenced block
# whose info string is `sh recipe`, in order, as one bash script in DIR.
#
#   scripts/broker-recipe.sh DIR [DOC]
#
# The test suite (tests/tests/broker_recipe.rs) and the interop suite
# (scripts/interop-mqtt.sh) both make their broker with it, so the recipe
# a reader follows is the one that is tested. GATEWAY_ID, BROKER_HOST and
# MQTT_PORT pass through to the recipe.
set -euo pipefail
DIR="${1:?usage: broker-recipe.sh DIR [DOC]}"
DOC="${2:-$(cd "$(dirname "$0")/.." && pwd)/docs/broker.md}"
SCRIPT="$(awk '
    /^```sh recipe[[:space:]]*$/ { inside = 1; blocks++; next }
    /^```/ && inside { inside = 0; next }
    inside { print }
    END { if (blocks == 0) exit 1 }
' "$DOC")" || { echo "broker-recipe: no \`\`\`sh recipe block in $DOC" >&2; exit 1; }
mkdir -p "$DIR"
cd "$DIR"
# openssl's progress dots go to stderr; the recipe's own errors still stop it.
bash -euo pipefail -c "$SCRIPT" 2> >(grep -v -E '^[.+*-]*$' >&2)
