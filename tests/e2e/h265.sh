#!/usr/bin/env bash
# H.265 end to end: owt-portal + owt-webrtc and two GStreamer webrtcbin clients
# (tests/gst/h265_forward.py: an x265enc publisher and an avdec_h265 subscriber), all on
# loopback inside the caller's network namespace (run as `unshare -n sh -c 'ip link set lo
# up; exec tests/e2e/h265.sh BIN_DIR [CODECS]'`). The room takes and sends CODECS (mediaIn and
# mediaOut video, default h265,vp8).
# Prints the JSON line of h265_forward.py.
set -euo pipefail
bin=${1:?bin dir}
# The room's video codecs, mediaIn and mediaOut alike (comma-separated).
video_codecs=${2:-h265,vp8}
. "$(dirname "$0")/common.sh"
start_sfu
python3 - "$video_codecs" > "$tmp/media.json" <<'PY'
import json, sys
codecs = [{"codec": c} for c in sys.argv[1].split(",")]
print(json.dumps({"mediaIn": {"video": codecs}, "mediaOut": {"video": {"format": codecs}}}))
PY
"$bin/owtctl" --config-dir "$tmp/etc" room update "$room" --file "$tmp/media.json" --json >/dev/null
status=0
# python3-gi exists only for Debian's interpreter, not for a python3 earlier on PATH.
timeout 90 /usr/bin/python3 "$here/tests/gst/h265_forward.py" http://127.0.0.1:8080 \
  "$(tok publisher)" "$(tok subscriber)" 60 40 || status=$?
if [ "$status" != 0 ]; then show_logs portal webrtc; fi
exit $status
