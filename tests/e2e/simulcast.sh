#!/usr/bin/env bash
# Simulcast run: owt-portal + owt-webrtc + one headless Chromium, on loopback inside the
# caller's network namespace (run as `unshare -n sh -c 'ip link set lo up; exec
# tests/e2e/simulcast.sh BIN_DIR'`). Prints the JSON line of tests/js/e2e-simulcast.js.
set -euo pipefail
bin=${1:?bin dir}
. "$(dirname "$0")/common.sh"
start_sfu
status=0
node "$here/tests/js/e2e-simulcast.js" http://127.0.0.1:8080 "$(tok publisher)" "$(tok viewer)" || status=$?
if [ "$status" != 0 ]; then show_logs portal webrtc; fi
exit $status
