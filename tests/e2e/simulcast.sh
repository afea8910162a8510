#!/usr/bin/env bash
# Simulcast run: owt-portal + owt-webrtc + one headless Chromium, on loopback inside the
# caller's network namespace (run as `unshare -n sh -c 'ip link set lo up; exec
# tests/e2e/simulcast.sh BIN_DIR'`). Prints the JSON line of tests/js/e2e-simulcast.js.
set -euo pipefail
bin=${1:?bin dir}
here=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
mkdir -p "$tmp/etc" "$tmp/etc-worker"
cat > "$tmp/etc/portal.toml" <<CONF
[state]
dir = "$tmp/state"
[management-api]
ip_address = "127.0.0.1"
[portal]
ip_address = "127.0.0.1"
bind_address = "127.0.0.1"
[app]
enabled = false
CONF
printf '[webrtc]\nloopback_candidates = true\n' > "$tmp/etc-worker/webrtc.toml"
room=$("$bin/owtctl" --config-dir "$tmp/etc" init --json --no-cert | python3 -c 'import json,sys; print(json.load(sys.stdin)["room"]["id"])')
"$bin/owt-portal" --config-dir "$tmp/etc" 2>"$tmp/portal.log" & pids+=($!)
"$bin/owt-webrtc" --config-dir "$tmp/etc-worker" 2>"$tmp/webrtc.log" & pids+=($!)
for _ in $(seq 200); do
  if "$bin/owtctl" --config-dir "$tmp/etc" cluster --json 2>/dev/null | grep -q webrtc; then break; fi
  sleep 0.05
done
tok() { "$bin/owtctl" --config-dir "$tmp/etc" token create "$room" --user "$1" --role presenter; }
status=0
node "$here/tests/js/e2e-simulcast.js" http://127.0.0.1:8080 "$(tok publisher)" "$(tok viewer)" || status=$?
if [ "$status" != 0 ]; then
  for log in portal webrtc; do echo "--- $log.log" >&2; tail -30 "$tmp/$log.log" >&2; done
fi
exit $status
