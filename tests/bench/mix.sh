#!/usr/bin/env bash
# MCU video mixing benchmark: CPU per mixed 1280x720 30 fps VP8 output frame, for 4 and 9
# inputs (640x480 30 fps VP8, 10 s each), owt-codec (the `mixbench` example: VideoDecoder,
# Compositor on owt_media::layout's fluid template with letterbox, VideoEncoder) against an
# equivalent ffmpeg pipeline (scale + pad per input, xstack, libvpx with owt-codec's VP8
# settings), in one run. Both work flat out on the same IVF files, so the runs are CPU-bound.
# Prints a table with the owt/ffmpeg ratios and writes the JSON (default bench/mix.json).
# Not a test: nothing is asserted about time.
#   tests/bench/mix.sh MIXBENCH [OUT_JSON]       (MIXBENCH: the release build of the example)
# MIX_COUNTS="4 9" input counts, MIX_KBPS=2000 output bitrate, MIX_REPEAT=2 runs of each tool
# per count in alternating order (the run with the least CPU is kept: other work on the machine
# only adds), MIX_INPUTS_DIR=bench/.mix-inputs (the generated clips, made once and reused).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

mixbench=${1:?usage: mix.sh MIXBENCH [OUT_JSON]}
out=${2:-$root/bench/mix.json}
counts=${MIX_COUNTS:-4 9}
kbps=${MIX_KBPS:-2000}
repeat=${MIX_REPEAT:-2}
inputs_dir=${MIX_INPUTS_DIR:-$root/bench/.mix-inputs}
W=1280 H=720 FPS=30 SECS=10
command -v ffmpeg >/dev/null || { echo "ffmpeg not installed (make bench-deps)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time missing (Debian package time)" >&2; exit 1; }
[ -x "$mixbench" ] || { echo "$mixbench missing" >&2; exit 1; }

# --- inputs: 640x480 30 fps 10 s, each a different moving source, VP8 as a WebRTC camera sends
# it (libvpx realtime, CBR 800 kbit/s, one keyframe). The name carries the recipe's version.
sources=(
  "testsrc2=size=640x480:rate=30"
  "mandelbrot=size=640x480:rate=30"
  "testsrc2=size=640x480:rate=30,hue=h=90"
  "cellauto=size=640x480:rate=30:rule=110"
  "testsrc2=size=640x480:rate=30,hue=h=180,hflip"
  "mandelbrot=size=640x480:rate=30:start_x=-0.7436438870371587:start_y=0.1318259042053120:start_scale=2"
  "testsrc2=size=640x480:rate=30,hue=h=270,vflip"
  "cellauto=size=640x480:rate=30:rule=30:random_fill_ratio=0.5"
  "testsrc2=size=640x480:rate=30,hue=s=0"
)
max=0
for n in $counts; do
  [ "$n" -le ${#sources[@]} ] || { echo "at most ${#sources[@]} inputs" >&2; exit 1; }
  if [ "$n" -gt "$max" ]; then max=$n; fi
done
mkdir -p "$inputs_dir"
files=()
for ((i = 0; i < max; i++)); do
  f="$inputs_dir/in$i.v1.ivf"
  if [ ! -s "$f" ]; then
    echo "== generating input $i: ${sources[$i]}" >&2
    # testsrc2 inputs start at different times of its clock (the mandelbrot zooms start at
    # different points instead: skipping its frames would cost seconds of rendering).
    ss=0; case ${sources[$i]} in testsrc2*) ss=$((i * 3)) ;; esac
    ffmpeg -hide_banner -nostdin -loglevel error -y -f lavfi -i "${sources[$i]}" -ss "$ss" -t "$SECS" \
      -c:v libvpx -deadline realtime -cpu-used 8 -lag-in-frames 0 -auto-alt-ref 0 -threads 1 -g 100000 \
      -b:v 800k -minrate 800k -maxrate 800k -bufsize 800k -f ivf "$f.tmp"
    mv "$f.tmp" "$f"
  fi
  files+=("$f")
done

# owt-codec's VP8 encoder threads for 720p on this machine (3, at most the cores).
threads=$("$mixbench" --encoder-threads --width $W --height $H)
bps=$((kbps * 1000))
gop=$((100 * FPS)) # owt-mixer: keyFrameInterval (OWT default 100 s) in frames
# lib/owt-codec/src/video.rs vpx_engine, option for option (VP8).
vp8_opts=(-c:v libvpx -deadline realtime -cpu-used 10 -lag-in-frames 0 -auto-alt-ref 0 -threads "$threads" -g "$gop"
  -b:v "$bps" -minrate "$bps" -maxrate "$bps" -bufsize "$bps" -rc_init_occupancy "$((bps / 2))"
  -undershoot-pct 100 -overshoot-pct 15 -max-intra-rate 300 -qmin 2 -qmax 56 -error-resilient 0 -static-thresh 1)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
runs=()

# ffmpeg's command for n inputs: each input decoded on one thread (as VideoDecoder), scaled
# bilinearly (as the Compositor's libswscale) to the letterboxed size and padded black to its
# region, both from `mixbench --layout` (the same layout math), then xstack at the regions.
ffmpeg_cmd() {
  local n=$1 i graph="" stack="" layout="" rx ry rw rh dx dy dw dh
  cmd=(ffmpeg -hide_banner -nostdin -loglevel error -y)
  for ((i = 0; i < n; i++)); do cmd+=(-threads 1 -i "${files[$i]}"); done
  i=0
  while read -r rx ry rw rh dx dy dw dh; do
    graph+="[$i:v]scale=$dw:$dh:flags=bilinear,pad=$rw:$rh:$((dx - rx)):$((dy - ry)):black[v$i];"
    stack+="[v$i]"
    layout+="${layout:+|}${rx}_${ry}"
    i=$((i + 1))
  done < <("$mixbench" --layout "$n" --width $W --height $H "${files[0]}")
  [ "$i" = "$n" ] || { echo "layout for $n inputs has $i regions" >&2; exit 1; }
  cmd+=(-filter_complex_threads 1 -filter_complex "${graph}${stack}xstack=inputs=$n:layout=$layout[out]"
    -map "[out]" -fps_mode passthrough "${vp8_opts[@]}" -f ivf "$work/ffmpeg.ivf")
}

# One run's figures as JSON: mix_record TOOL N TIME_FILE OUTPUT_IVF EXTRA (mixbench's JSON line, or
# a file with ffmpeg's arguments one a line).
mix_record() {
  python3 - "$@" <<'PY'
import json, shlex, sys
tool, n, time_file, ivf, extra = sys.argv[1:]
user, sys_, wall, rss = open(time_file).read().split()[-4:]
data = open(ivf, "rb").read()
at, frames, payload = int.from_bytes(data[6:8], "little"), 0, 0
while at + 12 <= len(data):
    size = int.from_bytes(data[at:at + 4], "little")
    frames, payload, at = frames + 1, payload + size, at + 12 + size
cpu = float(user) + float(sys_)
r = {"tool": tool, "inputs": int(n), "frames": frames, "cpu_user_s": float(user), "cpu_sys_s": float(sys_),
     "cpu_s": round(cpu, 3), "wall_s": float(wall), "max_rss_kib": int(rss), "output_bytes": payload,
     "cpu_ms_per_frame": round(1000 * cpu / frames, 3) if frames else None,
     "wall_fps": round(frames / float(wall), 2) if float(wall) else None,
     "output_kbps": round(payload * 8 / 1000 / (frames / 30), 1) if frames else None}
if tool == "owt":
    r["mixbench"] = json.loads(extra)
else:
    r["argv"] = open(extra).read().splitlines()
    r["command"] = shlex.join(r["argv"])
print(json.dumps(r))
PY
}

run_owt() {
  echo "== $n inputs, run $((r + 1))/$repeat: owt-codec mixbench" >&2
  /usr/bin/time -f "%U %S %e %M" -o "$work/time" \
    "$mixbench" --width $W --height $H --fps $FPS --kbps "$kbps" --out "$work/owt.ivf" "${files[@]:0:n}" >"$work/owt.json"
  mix_record owt "$n" "$work/time" "$work/owt.ivf" "$(cat "$work/owt.json")" >"$work/run-owt-$n-$r.json"
  runs+=("$work/run-owt-$n-$r.json")
}
run_ffmpeg() {
  echo "== $n inputs, run $((r + 1))/$repeat: ffmpeg" >&2
  /usr/bin/time -f "%U %S %e %M" -o "$work/time" "${cmd[@]}"
  mix_record ffmpeg "$n" "$work/time" "$work/ffmpeg.ivf" "$work/ffmpeg-$n.argv" >"$work/run-ffmpeg-$n-$r.json"
  runs+=("$work/run-ffmpeg-$n-$r.json")
}
for n in $counts; do
  ffmpeg_cmd "$n"
  printf '%s\n' "${cmd[@]}" >"$work/ffmpeg-$n.argv"
  for ((r = 0; r < repeat; r++)); do
    if ((r % 2 == 0)); then run_owt; run_ffmpeg; else run_ffmpeg; run_owt; fi
  done
done

mkdir -p "$(dirname "$out")"
python3 - "$out" "$threads" "$kbps" "${runs[@]}" <<'PY'
import json, os, platform, subprocess, sys
out, threads, kbps, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
runs = [json.load(open(f)) for f in files]
best = {}
for r in runs:
    key = (r["inputs"], r["tool"])
    if key not in best or r["cpu_s"] < best[key]["cpu_s"]:
        best[key] = r
hdr = (f'{"inputs":>6} {"tool":>7} {"frames":>6} {"CPU ms/frame":>12} {"cores":>5} {"wall fps":>8} '
       f'{"out kbit/s":>10} {"1st frame ms":>12} {"RSS MiB":>7}')
print(hdr); print("-" * len(hdr))
comparisons = []
for n in sorted({k[0] for k in best}):
    for tool in ("owt", "ffmpeg"):
        r = best.get((n, tool))
        if not r: continue
        first = r.get("mixbench", {}).get("first_frame_ms")
        print(f'{n:>6} {tool:>7} {r["frames"]:>6} {r["cpu_ms_per_frame"]:>12.2f} {r["cpu_s"] / r["wall_s"]:>5.2f} '
              f'{r["wall_fps"]:>8.1f} {r["output_kbps"]:>10.0f} {"-" if first is None else f"{first:.0f}":>12} '
              f'{r["max_rss_kib"] / 1024:>7.0f}')
    o, f = best.get((n, "owt")), best.get((n, "ffmpeg"))
    if o and f:
        c = {"inputs": n, "cpu_per_frame_owt_over_ffmpeg": round(o["cpu_ms_per_frame"] / f["cpu_ms_per_frame"], 3),
             "wall_fps_owt_over_ffmpeg": round(o["wall_fps"] / f["wall_fps"], 3),
             "cpu_ms_per_frame_owt": o["cpu_ms_per_frame"], "cpu_ms_per_frame_ffmpeg": f["cpu_ms_per_frame"]}
        comparisons.append(c)
        print(f'{n:>6} {"owt/ffmpeg":>7}: CPU per frame {c["cpu_per_frame_owt_over_ffmpeg"]:.2f}x, '
              f'wall fps {c["wall_fps_owt_over_ffmpeg"]:.2f}x')
for n in sorted({k[0] for k in best}):
    m = best.get((n, "owt"), {}).get("mixbench")
    if m and m["frames"]:
        per = lambda s: 1000 * s / m["frames"]
        print(f'{n:>6} owt stages, wall ms per frame: decode {per(m["decode_s"]):.2f} (all inputs), '
              f'compose {per(m["compose_s"]):.2f}, encode {per(m["encode_s"]):.2f}')
print("CPU = user+sys of the whole process (/usr/bin/time) over its output frames, start-up and file reading included;")
print("1st frame = owt-codec's codecs created to first encoded frame (join-to-first-mixed-frame proxy)")
ffmpeg_version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()[0]
doc = {"benchmark": "mix",
       "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "load_avg": os.getloadavg()},
       "setup": {"inputs": "640x480 30 fps 10 s VP8 (libvpx realtime CBR 800 kbit/s)",
                 "output": f"1280x720 30 fps VP8 {kbps} kbit/s, owt-codec's libvpx settings, {threads} encoder threads",
                 "layout": "owt_media fluid template (2x2 for 4, 3x3 for 9), letterbox, black background",
                 "ffmpeg": ffmpeg_version},
       "targets": {"owt": "lib/owt-codec/examples/mixbench (release): VideoDecoder, Compositor, VideoEncoder",
                   "ffmpeg": "ffmpeg CLI: scale+pad per input, xstack, libvpx (same settings and threads)"},
       "comparisons": comparisons, "best": [best[k] for k in sorted(best)], "runs": runs}
with open(out, "w") as fh:
    json.dump(doc, fh, indent=2); fh.write("\n")
print(f"wrote {out}")
PY
