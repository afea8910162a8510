#!/usr/bin/env bash
# One MCU end-to-end run: owt-portal + owt-webrtc + owt-mixer + headless Chromium, all on
# loopback inside the caller's network namespace (run as `unshare -n sh -c 'ip link set lo
# up; exec tests/e2e/mix.sh BIN_DIR'`). Two publishers send solid red and solid blue video
# with a loud 440 Hz and a softer 1000 Hz tone; a subscriber watches the room's mixed stream. Prints the
# JSON line of tests/js/e2e-mix.js.
set -euo pipefail
bin=${1:?bin dir}
. "$(dirname "$0")/common.sh"
write_portal_config "reconnection_timeout = 2"
room=$(init_room)
start owt-portal portal
start owt-webrtc webrtc
# Two mixers: the test kills the one rendering the view, the other takes over.
start owt-mixer mixer
start owt-mixer mixer2
wait_workers webrtc 1
wait_workers mixer 2
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
status=0
node "$here/tests/js/e2e-mix.js" http://127.0.0.1:8080 "$(tok alice)" "$(tok bob)" "$(tok carol)" "$room-common" "$(tok dave)" "$(tok erin)" || status=$?
if [ "$status" != 0 ]; then show_logs portal webrtc mixer mixer2; fi
exit $status
