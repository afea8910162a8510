#!/usr/bin/env bash
# One end-to-end run: owt-portal + owt-webrtc + two headless Chromium pages, all on loopback
# inside the caller's network namespace (run as `unshare -n sh -c 'ip link set lo up; exec
# tests/e2e/forward.sh CODEC BIN_DIR'`). Prints the JSON line of tests/js/e2e-forward.js.
set -euo pipefail
codec=${1:-VP8}
bin=${2:?bin dir}
here=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
mkdir -p "$tmp/etc" "$tmp/etc-webrtc"
# LOSS_PERCENT=N drops that share of every UDP packet in this namespace (media both ways,
# ICE, DTLS): the media path must recover with NACK/RTX and keyframe requests.
if [ -n "${LOSS_PERCENT:-}" ]; then
  nft add table inet owt_loss
  nft add chain inet owt_loss input '{ type filter hook input priority 0; }'
  nft add rule inet owt_loss input meta l4proto udp numgen random mod 100 \< "$LOSS_PERCENT" drop
fi
cat > "$tmp/etc/portal.toml" <<CONF
[state]
dir = "$tmp/state"
[management-api]
ip_address = "127.0.0.1"
[portal]
ip_address = "127.0.0.1"
bind_address = "127.0.0.1"
reconnection_timeout = 2
[app]
enabled = false
CONF
# NODES=2: two webrtc nodes and round-robin scheduling put the publisher on one and the
# subscriber on the other, so the stream crosses the media link between them.
if [ "${NODES:-1}" = 2 ]; then
  printf '[scheduling]\nwebrtc = "round-robin"\n' >> "$tmp/etc/portal.toml"
fi
printf '[webrtc]\nloopback_candidates = true\n' > "$tmp/etc-webrtc/webrtc.toml"
room=$("$bin/owtctl" --config-dir "$tmp/etc" init --json --no-cert | python3 -c 'import json,sys; print(json.load(sys.stdin)["room"]["id"])')
"$bin/owt-portal" --config-dir "$tmp/etc" 2>"$tmp/portal.log" & pids+=($!)
"$bin/owt-webrtc" --config-dir "$tmp/etc-webrtc" 2>"$tmp/webrtc.log" & pids+=($!)
if [ "${NODES:-1}" = 2 ]; then
  "$bin/owt-webrtc" --config-dir "$tmp/etc-webrtc" 2>"$tmp/webrtc2.log" & pids+=($!)
else
  export WEBRTC_PID=$!
fi
for _ in $(seq 200); do
  workers=$("$bin/owtctl" --config-dir "$tmp/etc" cluster --json 2>/dev/null | grep -o '"kind": *"webrtc"' | wc -l || true)
  if [ "$workers" -ge "${NODES:-1}" ]; then break; fi
  sleep 0.05
done
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
tok() { "$bin/owtctl" --config-dir "$tmp/etc" token create "$room" --user "$1" --role presenter; }
status=0
node "$here/tests/js/e2e-forward.js" http://127.0.0.1:8080 "$(tok publisher)" "$(tok subscriber)" "$codec" || status=$?
if [ "$status" != 0 ]; then
  echo "--- portal.log" >&2; tail -30 "$tmp/portal.log" >&2
  echo "--- webrtc.log" >&2; tail -30 "$tmp/webrtc.log" >&2
  if [ -f "$tmp/webrtc2.log" ]; then echo "--- webrtc2.log" >&2; tail -30 "$tmp/webrtc2.log" >&2; fi
fi
exit $status
