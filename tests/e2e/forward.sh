#!/usr/bin/env bash
# One end-to-end run: owt-portal + owt-webrtc + two headless Chromium pages, all on loopback
# inside the caller's network namespace (run as `unshare -n sh -c 'ip link set lo up; exec
# tests/e2e/forward.sh CODEC BIN_DIR'`). Prints the JSON line of tests/js/e2e-forward.js.
set -euo pipefail
codec=${1:-VP8}
bin=${2:?bin dir}
. "$(dirname "$0")/common.sh"
# LOSS_PERCENT=N drops that share of every UDP packet in this namespace (media both ways,
# ICE, DTLS): the media path must recover with NACK/RTX and keyframe requests.
# owt-webrtc sends a frame's packets to a subscriber as one UDP GSO buffer; loopback would carry
# it whole, and the rule would drop whole frames. A wire carries datagrams: with UDP segmentation
# off on lo, the kernel splits GSO buffers before they reach the input hook.
if [ -n "${LOSS_PERCENT:-}" ]; then
  ethtool -K lo tx-udp-segmentation off
  nft add table inet owt_loss
  nft add chain inet owt_loss input '{ type filter hook input priority 0; }'
  nft add rule inet owt_loss input meta l4proto udp numgen random mod 100 \< "$LOSS_PERCENT" drop
fi
write_portal_config "reconnection_timeout = 2"
# NODES=2: two webrtc nodes and round-robin scheduling put the publisher on one and the
# subscriber on the other, so the stream crosses the media link between them.
if [ "${NODES:-1}" = 2 ]; then
  printf '[scheduling]\nwebrtc = "round-robin"\n' >> "$tmp/etc/portal.toml"
fi
room=$(init_room)
start owt-portal portal
start owt-webrtc webrtc
if [ "${NODES:-1}" = 2 ]; then
  start owt-webrtc webrtc2
else
  export WEBRTC_PID=$started
fi
wait_workers webrtc "${NODES:-1}"
# MEDIA_IN=codec,codec: the room accepts (mediaIn) and sends (mediaOut) only these video codecs.
if [ -n "${MEDIA_IN:-}" ]; then
  python3 - "$MEDIA_IN" > "$tmp/media.json" <<'PY'
import json, sys
codecs = [{"codec": c} for c in sys.argv[1].split(",")]
print(json.dumps({"mediaIn": {"video": codecs}, "mediaOut": {"video": {"format": codecs}}}))
PY
  "$bin/owtctl" --config-dir "$tmp/etc" room update "$room" --file "$tmp/media.json" --json >/dev/null
fi
# A 440 Hz tone as the fake microphone, so the subscriber's audio energy is measurable.
python3 - "$tmp/tone.wav" <<'PY'
import math, struct, sys, wave
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(48000)
    w.writeframes(b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * i / 48000))) for i in range(48000 * 5)))
PY
export OWT_FAKE_AUDIO="$tmp/tone.wav"
export OWTCTL="$bin/owtctl --config-dir $tmp/etc" OWT_ROOM="$room"
# With ONE_UDP_PORT, owt-webrtc's UDP sockets are listed every half second during the run.
if [ -n "${ONE_UDP_PORT:-}" ]; then
  (while sleep 0.5; do ss -uanpH | grep owt-webrtc || true; done > "$tmp/udp.txt") &
  pids+=($!)
fi
status=0
node "$here/tests/js/e2e-forward.js" http://127.0.0.1:8080 "$(tok publisher)" "$(tok subscriber)" "$codec" || status=$?
if [ "$status" = 0 ] && [ -n "${ONE_UDP_PORT:-}" ]; then
  # Every socket seen is the shared port; anything else means a connection bound its own.
  others=$(awk '{print $4}' "$tmp/udp.txt" | grep -v ":$ONE_UDP_PORT\$" | sort -u || true)
  if [ ! -s "$tmp/udp.txt" ] || [ -n "$others" ]; then
    echo "owt-webrtc UDP sockets besides port $ONE_UDP_PORT: ${others:-none seen at all}" >&2
    status=1
  fi
fi
if [ "$status" != 0 ]; then show_logs portal webrtc webrtc2; fi
exit $status
