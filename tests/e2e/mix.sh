#!/usr/bin/env bash
# One MCU end-to-end run: owt-portal + owt-webrtc + owt-mixer + headless Chromium, all on
# loopback inside the caller's network namespace (run as `unshare -n sh -c 'ip link set lo
# up; exec tests/e2e/mix.sh BIN_DIR'`). Two publishers send solid red and solid blue video
# with a loud 440 Hz and a softer 1000 Hz tone; a subscriber watches the room's mixed stream. Prints the
# JSON line of tests/js/e2e-mix.js.
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
reconnection_timeout = 2
[app]
enabled = false
CONF
printf '[webrtc]\nloopback_candidates = true\n' > "$tmp/etc-worker/webrtc.toml"
room=$("$bin/owtctl" --config-dir "$tmp/etc" init --json --no-cert | python3 -c 'import json,sys; print(json.load(sys.stdin)["room"]["id"])')
"$bin/owt-portal" --config-dir "$tmp/etc" 2>"$tmp/portal.log" & pids+=($!)
"$bin/owt-webrtc" --config-dir "$tmp/etc-worker" 2>"$tmp/webrtc.log" & pids+=($!)
# Two mixers: the test kills the one rendering the view, the other takes over.
"$bin/owt-mixer" --config-dir "$tmp/etc-worker" 2>"$tmp/mixer.log" & pids+=($!)
"$bin/owt-mixer" --config-dir "$tmp/etc-worker" 2>"$tmp/mixer2.log" & pids+=($!)
for _ in $(seq 200); do
  kinds=$("$bin/owtctl" --config-dir "$tmp/etc" cluster --json 2>/dev/null || true)
  if grep -q webrtc <<<"$kinds" && [ "$(grep -o '"kind": *"mixer"' <<<"$kinds" | wc -l)" -ge 2 ]; then break; fi
  sleep 0.05
done
# Solid-colour 320x240 y4m clips and tones: what each publisher's fake camera and microphone send.
python3 - "$tmp" <<'PY'
import math, struct, sys, wave
tmp = sys.argv[1]
def y4m(path, rgb):
    r, g, b = rgb
    y = int(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255)
    u = int(128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255)
    v = int(128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255)
    w, h = 320, 240
    frame = b"FRAME\n" + bytes([y]) * (w * h) + bytes([u]) * (w * h // 4) + bytes([v]) * (w * h // 4)
    with open(path, "wb") as f:
        f.write(b"YUV4MPEG2 W320 H240 F30:1 Ip A1:1 C420jpeg\n" + frame * 30)
def tone(path, hz, amplitude):
    with wave.open(path, "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(48000)
        w.writeframes(b"".join(struct.pack("<h", int(amplitude * math.sin(2 * math.pi * hz * i / 48000))) for i in range(48000 * 3)))
y4m(f"{tmp}/red.y4m", (220, 30, 30)); y4m(f"{tmp}/blue.y4m", (30, 30, 220))
# A is the louder speaker (activeInput).
tone(f"{tmp}/a.wav", 440, 12000); tone(f"{tmp}/b.wav", 1000, 4000)
PY
export FAKE_A="$tmp/red.y4m:$tmp/a.wav" FAKE_B="$tmp/blue.y4m:$tmp/b.wav" OWTCTL="$bin/owtctl --config-dir $tmp/etc"
tok() { "$bin/owtctl" --config-dir "$tmp/etc" token create "$room" --user "$1" --role presenter; }
status=0
node "$here/tests/js/e2e-mix.js" http://127.0.0.1:8080 "$(tok alice)" "$(tok bob)" "$(tok carol)" "$room-common" "$(tok dave)" "$(tok erin)" || status=$?
if [ "$status" != 0 ]; then
  for log in portal webrtc mixer mixer2; do echo "--- $log.log" >&2; tail -30 "$tmp/$log.log" >&2; done
fi
exit $status
