#!/usr/bin/env bash
# SFU benchmark: the same WebRTC load (owt-loadgen: P publishers x S subscribers each, synthetic
# ~1.2 Mbit/s VP8) against owt-rs (owt-portal + owt-webrtc, loopback ICE) and Janus 1.1.2
# videoroom (ICE on a veth inside the netns: Janus never gathers on loopback), each in its own
# `unshare -n` network namespace, in one run. Prints a table with the owt/Janus ratios and
# writes the JSON (default bench/sfu.json).
#   tests/bench/sfu.sh BIN_DIR [OUT_JSON]          (as root; BIN_DIR holds release binaries)
# Loads: SFU_LOADS="1x10 2x25 4x50" (each only if the one before kept loss under 5% on both),
# SFU_SECS=15 seconds each. SFU_PERF=1 also records `perf` of owt-webrtc during each owt run
# (perf.data in SFU_PERF_DIR, default /tmp; Debian's linux-perf).
# SFU_PERF_ARGS replaces perf record's options (default "-F 499 -g"; e.g. "-F 499 --call-graph dwarf", or
# "-c 1 -e raw_syscalls:sys_enter" to count syscalls).
# SFU_PACKETS_PER_FRAME (default 4, ~1.2 Mbit/s; 6 ~1.7, 8 ~2.3 Mbit/s) sets the stream bitrate at 30 fps.
# SFU_TARGETS="owt" runs one target only (e.g. to compare two owt builds: A/B on one machine).
# SFU_WEBRTC_THREADS sets owt-webrtc's [webrtc] worker_threads (default 0: one per core).
# SFU_WEBRTC_PIN=false sets owt-webrtc's [webrtc] pin_worker_threads to false (default true).
# SFU_ONE_UDP_PORT=N puts every owt-webrtc connection on UDP port N (minport = maxport = N).
# SFU_REPEAT=N (default 1) runs every load N times per target, in turns, and reports the median of each figure:
# this machine's run-to-run noise is often larger than the difference between two builds.
# SFU_LOADGEN_NICE (default 19) is the load generator's nice value, for both targets: the
# clients of a real server run elsewhere, and at nice 0 the server's burst of copies waited for the
# load generator's receivers on the same 2 cores (its CPU per packet is about twice the server's).
# 0 gives the old setup.
# SFU_LOADGEN_POLICY (default idle) is the load generator's scheduling policy: with "idle"
# (SCHED_IDLE, `chrt --idle`) it and its wire-capture thread run only on CPU time the server leaves,
# and never take a core from the server's threads; at nice 19 under the kernel's EEVDF scheduler
# they still preempted the server's workers for milliseconds (about 90 times a second at 4x50).
# "other" keeps the normal policy (nice only).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
loadgen_sched=(nice -n "${SFU_LOADGEN_NICE:-19}")
case "${SFU_LOADGEN_POLICY:-idle}" in
  idle) loadgen_sched=(chrt --idle 0 "${loadgen_sched[@]}") ;;
  other) ;;
  *) echo "SFU_LOADGEN_POLICY must be idle or other" >&2; exit 2 ;;
esac

# --- one phase, run inside a fresh netns: tests/bench/sfu.sh --phase owt|janus BIN P S SECS OUT
if [ "${1:-}" = "--phase" ]; then
  target=$2 bin=$3 P=$4 S=$5 secs=$6 out=$7
  ip link set lo up
  tmp=$(mktemp -d)
  pids=()
  cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
  trap cleanup EXIT
  common=(-p "$P" -s "$S" --secs "$secs" --json "$out" --packets-per-frame "${SFU_PACKETS_PER_FRAME:-4}")
  if [ "$target" = owt ]; then
    mkdir -p "$tmp/etc" "$tmp/etc-webrtc"
    printf '[log]\nlevel = "'"${SFU_LOG_LEVEL:-warn}"'"\n[state]\ndir = "%s"\n[management-api]\nip_address = "127.0.0.1"\n[portal]\nip_address = "127.0.0.1"\nbind_address = "127.0.0.1"\n' "$tmp/state" > "$tmp/etc/portal.toml"
    printf '[log]\nlevel = "warn"\n[webrtc]\nloopback_candidates = true\nworker_threads = %s\npin_worker_threads = %s\n' "${SFU_WEBRTC_THREADS:-0}" "${SFU_WEBRTC_PIN:-true}" > "$tmp/etc-webrtc/webrtc.toml"
    if [ -n "${SFU_ONE_UDP_PORT:-}" ]; then
      printf 'minport = %s\nmaxport = %s\n' "$SFU_ONE_UDP_PORT" "$SFU_ONE_UDP_PORT" >> "$tmp/etc-webrtc/webrtc.toml"
    fi
    room=$("$bin/owtctl" --config-dir "$tmp/etc" init --json --no-cert | python3 -c 'import json,sys; print(json.load(sys.stdin)["room"]["id"])')
    "$bin/owt-portal" --config-dir "$tmp/etc" 2>"$tmp/portal.log" & portal=$!; pids+=($portal)
    "$bin/owt-webrtc" --config-dir "$tmp/etc-webrtc" 2>"$tmp/webrtc.log" & webrtc=$!; pids+=($webrtc)
    for _ in $(seq 200); do
      "$bin/owtctl" --config-dir "$tmp/etc" cluster --json 2>/dev/null | grep -q webrtc && break
      sleep 0.05
    done
    if [ "${SFU_PERF:-0}" = 1 ] && command -v perf >/dev/null; then
      (sleep $((2 + P * S / 8)); timeout $((secs)) perf record ${SFU_PERF_ARGS:--F 499 -g} -p "$webrtc" -o "${out%.json}.perf.data" >/dev/null 2>&1) & pids+=($!)
    fi
    status=0
    timeout $((secs + 90)) "${loadgen_sched[@]}" "$bin/owt-loadgen" --target owt --room "$room" --owtctl "$bin/owtctl" --owt-config-dir "$tmp/etc" \
      --server-pid "$portal" --server-pid "$webrtc" "${common[@]}" >/dev/null || status=$?
    if [ "$status" != 0 ]; then
      echo "--- owt-portal log" >&2; tail -20 "$tmp/portal.log" >&2; [ -n "${SFU_KEEP_LOGS:-}" ] && cp "$tmp"/*.log "$SFU_KEEP_LOGS"/
      echo "--- owt-webrtc log" >&2; tail -20 "$tmp/webrtc.log" >&2
    fi
  else
    command -v janus >/dev/null || { echo "janus not installed (make bench-deps)" >&2; exit 1; }
    # A veth pair kept entirely inside this netns; 198.18.0.1 (RFC 2544 range) exists only here.
    ip link add jx0 type veth peer name jx1
    ip addr add 198.18.0.1/32 dev jx0
    ip link set jx1 up; ip link set jx0 up
    janus -F "$here/janus" -C "$here/janus/janus.jcfg" -o >"$tmp/janus.log" 2>&1 & J=$!; pids+=($J)
    for _ in $(seq 100); do
      curl -sf -XPOST http://127.0.0.1:18088/janus -d '{"janus":"info","transaction":"x"}' >/dev/null && break
      sleep 0.1
    done
    status=0
    timeout $((secs + 90)) "${loadgen_sched[@]}" "$bin/owt-loadgen" --target janus --ice-ip 198.18.0.1 --server-pid "$J" "${common[@]}" >/dev/null || status=$?
    if [ "$status" != 0 ]; then echo "--- janus log" >&2; tail -30 "$tmp/janus.log" >&2; fi
  fi
  exit $status
fi

# --- the whole benchmark
bin=${1:?usage: sfu.sh BIN_DIR [OUT_JSON]}
bin=$(cd "$bin" && pwd)
out=${2:-$root/bench/sfu.json}
secs=${SFU_SECS:-15}
loads=${SFU_LOADS:-1x10 2x25 4x50}
repeat=${SFU_REPEAT:-1}
[ "$(id -u)" = 0 ] || { echo "sfu.sh needs root (unshare -n, veth)" >&2; exit 1; }
for p in owt-portal owt-webrtc owtctl owt-loadgen; do [ -x "$bin/$p" ] || { echo "$bin/$p missing" >&2; exit 1; }; done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
runs=()
for load in $loads; do
  P=${load%x*} S=${load#*x}
  ok=1
  for rep in $(seq "$repeat"); do
    for target in ${SFU_TARGETS:-owt janus}; do
      f="$work/$target-$load-$rep.json"
      echo "== $target ${P}x${S}, ${secs}s (run $rep of $repeat)" >&2
      if unshare -n bash "$0" --phase "$target" "$bin" "$P" "$S" "$secs" "$f"; then
        runs+=("$f")
        python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r["loss"] < 0.05 else 1)' "$f" || ok=0
      else
        echo "   $target ${P}x${S} failed" >&2; ok=0
      fi
      if [ -f "$work/$target-$load-$rep.perf.data" ]; then
        cp "$work/$target-$load-$rep.perf.data" "${SFU_PERF_DIR:-/tmp}/owt-webrtc-$load.perf.data"
        echo "   perf data: ${SFU_PERF_DIR:-/tmp}/owt-webrtc-$load.perf.data" >&2
      fi
    done
  done
  [ "$ok" = 1 ] || { echo "== stopping after ${P}x${S}: a run failed or lost >= 5%" >&2; break; }
done
[ ${#runs[@]} -gt 0 ] || { echo "no run succeeded" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
python3 - "$out" "$repeat" "${runs[@]}" <<'PY'
import json, sys, os, platform, statistics
out, repeat, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
runs = [json.load(open(f)) for f in files]
grouped = {}
for r in runs:
    grouped.setdefault((r["publishers"], r["subscribers_per_publisher"]), {}).setdefault(r["target"], []).append(r)

def median_run(rs):
    """Each number the median of its runs (SFU_REPEAT), the rest as in the first run."""
    m = dict(rs[0])
    for k, v in rs[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals = [r[k] for r in rs if isinstance(r.get(k), (int, float))]
            m[k] = statistics.median(vals)
            if isinstance(v, int) and all(isinstance(x, int) for x in vals):
                m[k] = round(m[k])
    return m

by = {load: {t: median_run(rs) for t, rs in ts.items()} for load, ts in grouped.items()}
rows, comparisons = [], []
hdr = (f'{"load":>6} {"server":>6} {"pkt/CPU-s":>10} {"streams/core":>12} {"cores":>6} {"p50 µs":>8} {"p99 µs":>8} '
       f'{"+p50 µs":>8} {"+p99 µs":>8} {"srv p50":>8} {"srv p99":>8} {"KiB/sub":>8} {"loss %":>7} {"reord":>6}')
wire = lambda v: "-" if v is None else f"{v:.0f}"
print(hdr); print("-" * len(hdr))
for (p, s), t in sorted(by.items()):
    for name in ("owt", "janus"):
        r = t.get(name)
        if not r: continue
        print(f'{p}x{s:<4} {name:>6} {r["forwarded_per_cpu_s"]:>10.0f} {r["streams_per_core"]:>12.0f} {r["server_cores"]:>6.2f} '
              f'{r["latency_us_p50"]:>8} {r["latency_us_p99"]:>8} {r["added_latency_us_p50"]:>8} {r["added_latency_us_p99"]:>8} '
              f'{wire(r.get("server_latency_us_p50")):>8} {wire(r.get("server_latency_us_p99")):>8} '
              f'{r["rss_kib_per_subscriber"]:>8.0f} {100*r["loss"]:>7.3f} {r.get("packets_out_of_order", 0):>6}')
    o, j = t.get("owt"), t.get("janus")
    if o and j:
        ratio = lambda a, b: (a / b) if b else None
        c = {"load": f"{p}x{s}",
             "pkt_per_cpu_s_owt_over_janus": ratio(o["forwarded_per_cpu_s"], j["forwarded_per_cpu_s"]),
             "p50_owt_over_janus": ratio(o["latency_us_p50"], j["latency_us_p50"]),
             "p99_owt_over_janus": ratio(o["latency_us_p99"], j["latency_us_p99"]),
             "added_p50_us_owt": o["added_latency_us_p50"], "added_p99_us_owt": o["added_latency_us_p99"],
             "added_p50_us_janus": j["added_latency_us_p50"], "added_p99_us_janus": j["added_latency_us_p99"],
             "server_p50_us_owt": o.get("server_latency_us_p50"), "server_p99_us_owt": o.get("server_latency_us_p99"),
             "server_p50_us_janus": j.get("server_latency_us_p50"), "server_p99_us_janus": j.get("server_latency_us_p99"),
             "rss_per_sub_owt_over_janus": ratio(o["rss_kib_per_subscriber"], j["rss_kib_per_subscriber"]),
             "streams_per_core_owt": o["streams_per_core"], "streams_per_core_janus": j["streams_per_core"]}
        comparisons.append(c)
        f = lambda v: "n/a" if v is None else f"{v:.2f}x"
        print(f'{p}x{s:<4} {"owt/janus":>6}: pkt/CPU-s {f(c["pkt_per_cpu_s_owt_over_janus"])}, p50 {f(c["p50_owt_over_janus"])}, '
              f'p99 {f(c["p99_owt_over_janus"])}, RSS/sub {f(c["rss_per_sub_owt_over_janus"])}')
hdr2 = f'{"load":>6} {"server":>6} {"1st p50":>8} {"1st p99":>8} {"last p50":>8} {"last p99":>8} {"steal %":>8}'
print(); print(hdr2); print("-" * len(hdr2))
for (p, s), t in sorted(by.items()):
    for name in ("owt", "janus"):
        r = t.get(name)
        if not r: continue
        print(f'{p}x{s:<4} {name:>6} {wire(r.get("server_first_copy_us_p50")):>8} {wire(r.get("server_first_copy_us_p99")):>8} '
              f'{wire(r.get("server_last_copy_us_p50")):>8} {wire(r.get("server_last_copy_us_p99")):>8} '
              f'{r.get("machine_steal_percent", 0):>8.1f}')
print("1st/last = per publisher frame, from its first packet entering the server to the first / the last of its copies")
print("  to the subscribers leaving it (µs, wire timestamps): the inbound path, and the inbound path plus the fan-out")
print("steal % = the machine's CPU time the hypervisor took during the run (a virtual machine's noise: one stall of a")
print("  few ms in a light run's window is 1% of its copies, so it alone sets the p99)")
if repeat > 1:
    print(f"every figure is the median of {repeat} runs of each target, taken in turns (all runs are in the JSON)")
print(f'each stream: synthetic VP8 of {runs[0]["kbit_per_stream"]:.0f} kbit/s, {runs[0]["packets_per_second_per_stream"]} packets/s')
print("streams/core = subscribed streams / (server CPU-s per s); pkt/CPU-s = packets delivered to subscribers per server CPU-second")
print("latency = subscriber receive time - publisher send time (same host clock), client stacks included;")
print("+p50/+p99 = latency minus that of one direct publisher->subscriber pair in the same run: an upper bound of what")
print("  the server adds (the server's subscribers also queue behind each other in the one load generator process)")
print("reord = packets that reached their subscriber after a later packet of the same publisher (all subscribers)")
print("srv p50/p99 = what the server alone adds, from kernel wire timestamps: a forwarded packet leaving the server minus")
print("  its publisher packet entering it (AF_PACKET capture in the netns, matched by SSRC/sequence; µs)")
doc = {"benchmark": "sfu", "repeat": repeat, "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
       "targets": {"owt": "owt-portal + owt-webrtc (release), loopback ICE", "janus": "Janus videoroom (Debian), veth ICE in the netns"},
       "comparisons": comparisons, "runs": runs}
with open(out, "w") as fh:
    json.dump(doc, fh, indent=2); fh.write("\n")
print(f"wrote {out}")
PY
