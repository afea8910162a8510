#!/usr/bin/env bash
# MCU layout run with four publishers: owt-portal + owt-webrtc + owt-mixer + one headless
# Chromium, on loopback inside the caller's network namespace (run as `unshare -n sh -c 'ip
# link set lo up; exec tests/e2e/mix4.sh BIN_DIR'`). The room's view has a custom template
# (user guide §3.5.1) and a white bgColor. Prints the JSON line of tests/js/e2e-mix4.js.
set -euo pipefail
bin=${1:?bin dir}
. "$(dirname "$0")/common.sh"
write_portal_config
init_room >/dev/null
start owt-portal portal
start owt-webrtc webrtc
start owt-mixer mixer
wait_workers webrtc 1
wait_workers mixer 1
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
status=0
node "$here/tests/js/e2e-mix4.js" http://127.0.0.1:8080 "$room" "$(tok p1)" "$(tok p2)" "$(tok p3)" "$(tok p4)" "$(tok viewer)" || status=$?
if [ "$status" != 0 ]; then show_logs portal webrtc mixer; fi
exit $status
