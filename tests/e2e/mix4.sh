#!/usr/bin/env bash
# MCU layout run with four publishers: owt-portal + owt-webrtc + owt-mixer + one headless
# Chromium, on loopback inside the caller's network namespace (run as `unshare -n sh -c 'ip
# link set lo up; exec tests/e2e/mix4.sh BIN_DIR'`). The room's view has a custom template
# (user guide §3.5.1) and a white bgColor. Prints the JSON line of tests/js/e2e-mix4.js.
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
"$bin/owtctl" --config-dir "$tmp/etc" init --json --no-cert >/dev/null
"$bin/owt-portal" --config-dir "$tmp/etc" 2>"$tmp/portal.log" & pids+=($!)
"$bin/owt-webrtc" --config-dir "$tmp/etc-worker" 2>"$tmp/webrtc.log" & pids+=($!)
"$bin/owt-mixer" --config-dir "$tmp/etc-worker" 2>"$tmp/mixer.log" & pids+=($!)
for _ in $(seq 200); do
  kinds=$("$bin/owtctl" --config-dir "$tmp/etc" cluster --json 2>/dev/null || true)
  if grep -q webrtc <<<"$kinds" && grep -q mixer <<<"$kinds"; then break; fi
  sleep 0.05
done
# One tall region on the left, three stacked on the right; fractions as in the user guide.
cat > "$tmp/room.json" <<'JSON'
{"views": [{"label": "common", "video": {"bgColor": {"r": 255, "g": 255, "b": 255}, "layout": {"templates": {
  "base": "void", "custom": [{"region": [
    {"id": "1", "shape": "rectangle", "area": {"left": "0", "top": "0", "width": "1/2", "height": "1"}},
    {"id": "2", "shape": "rectangle", "area": {"left": "1/2", "top": "0", "width": "1/2", "height": "1/3"}},
    {"id": "3", "shape": "rectangle", "area": {"left": "1/2", "top": "1/3", "width": "1/2", "height": "1/3"}},
    {"id": "4", "shape": "rectangle", "area": {"left": "1/2", "top": "2/3", "width": "1/2", "height": "1/3"}}]}]}}}}]}
JSON
room=$("$bin/owtctl" --config-dir "$tmp/etc" room create four --file "$tmp/room.json" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
export OWTCTL="$bin/owtctl --config-dir $tmp/etc"
tok() { "$bin/owtctl" --config-dir "$tmp/etc" token create "$room" --user "$1" --role presenter; }
status=0
node "$here/tests/js/e2e-mix4.js" http://127.0.0.1:8080 "$room" "$(tok p1)" "$(tok p2)" "$(tok p3)" "$(tok p4)" "$(tok viewer)" || status=$?
if [ "$status" != 0 ]; then
  for log in portal webrtc mixer; do echo "--- $log.log" >&2; tail -30 "$tmp/$log.log" >&2; done
fi
exit $status
