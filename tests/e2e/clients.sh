#!/usr/bin/env bash
# One run of the media requests over an older socket.io-client: owt-portal + owt-webrtc + two
# headless Chromium pages on loopback inside the caller's network namespace (run as `unshare -n
# sh -c 'ip link set lo up; exec tests/e2e/clients.sh 2|3 BIN_DIR'`). Prints the JSON line of
# tests/js/e2e-clients.js.
set -euo pipefail
version=${1:?socket.io-client major version: 2 or 3}
bin=${2:?bin dir}
. "$(dirname "$0")/common.sh"
start_sfu
export OWTCTL="$bin/owtctl --config-dir $tmp/etc" OWT_ROOM="$room"
status=0
node "$here/tests/js/e2e-clients.js" http://127.0.0.1:8080 "$(tok publisher)" "$(tok subscriber)" "$version" || status=$?
if [ "$status" != 0 ]; then show_logs portal webrtc; fi
exit $status
