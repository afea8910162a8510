#!/usr/bin/env bash
# Join-latency benchmark of owt-portal signaling (issue 3): N Socket.IO clients (default 200)
# log in to one room at the same moment, on loopback. Side by side, the same load against a
# minimal Node.js socket.io 4 server that answers `login` without any checks (a floor: what
# the transport alone costs). Prints a table and writes bench/join.json.
#   tests/bench/join-latency.sh [N] [BIN_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-200}
bin=${2:-$here/target/debug}
out_dir=$here/bench
mkdir -p "$out_dir"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rest=$(free_port); sig=$(free_port); bus=$(free_port); ref=$(free_port)
mkdir -p "$tmp/etc"
cat > "$tmp/etc/portal.toml" <<CONF
[state]
dir = "$tmp/state"
[management-api]
ip_address = "127.0.0.1"
port = $rest
[portal]
ip_address = "127.0.0.1"
bind_address = "127.0.0.1"
port = $sig
[app]
enabled = false
[cluster]
bus = "tcp://127.0.0.1:$bus"
[log]
level = "warn"
CONF
room=$("$bin/owtctl" --config-dir "$tmp/etc" init --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["room"]["id"])')
"$bin/owt-portal" --config-dir "$tmp/etc" 2>"$tmp/portal.log" &
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$rest) 2>/dev/null && break; sleep 0.05; done

echo "creating $n tokens..." >&2
python3 - "$bin/owtctl" "$tmp/etc" "http://127.0.0.1:$rest" "$room" "$n" > "$tmp/tokens.json" <<'PY'
import json, subprocess, sys
owtctl, etc, url, room, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
tokens = [subprocess.run([owtctl, "--config-dir", etc, "--url", url, "token", "create", room, "--user", f"u{i}"],
                         check=True, capture_output=True, text=True).stdout.strip() for i in range(n)]
print(json.dumps(tokens))
PY

node "$here/tests/js/ref-join-server.js" "$ref" &
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$ref) 2>/dev/null && break; sleep 0.05; done

portal_pid=${pids[0]}
ref_pid=${pids[1]}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tick=$(getconf CLK_TCK)

c0=$(cpu "$portal_pid")
owt=$(cd "$here/tests/js" && node join-load.js "http://127.0.0.1:$sig" "$tmp/tokens.json") || true  # errors show in the table
c1=$(cpu "$portal_pid")
r0=$(cpu "$ref_pid")
refr=$(cd "$here/tests/js" && node join-load.js "http://127.0.0.1:$ref" "$tmp/tokens.json") || true
r1=$(cpu "$ref_pid")

python3 - "$owt" "$refr" "$(( c1 - c0 ))" "$(( r1 - r0 ))" "$tick" "$n" "$out_dir/join.json" <<'PY'
import json, sys
owt, ref = json.loads(sys.argv[1]), json.loads(sys.argv[2])
owt_cpu, ref_cpu, tick, n, path = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
owt["serverCpuS"], ref["serverCpuS"] = owt_cpu / tick, ref_cpu / tick
rows = [("owt-portal (token check, room, notifications)", owt), ("node socket.io 4, login answered blindly", ref)]
print(f"join latency, {n} clients logging in at once on loopback (ms)")
print(f"{'server':<48} {'p50':>6} {'p90':>6} {'p99':>6} {'max':>6} {'wall':>6} {'cpu s':>6} {'errors':>6}")
for name, r in rows:
    l = r["latencyMs"]
    print(f"{name:<48} {l['p50']:>6} {l['p90']:>6} {l['p99']:>6} {l['max']:>6} {r['wallMs']:>6} {r['serverCpuS']:>6.2f} {len(r['errors']):>6}")
ratio = owt["latencyMs"]["p50"] / max(ref["latencyMs"]["p50"], 1)
print(f"p50 ratio owt-portal / reference floor: {ratio:.2f}")
json.dump({"clients": n, "owt_portal": owt, "reference": ref, "p50_ratio": ratio}, open(path, "w"), indent=2)
print(f"written {path}")
PY
