# Shared by the tests/e2e drivers (sourced, after `bin` is set to the programs' directory):
# a temp directory removed at exit with every daemon started here, a portal configuration
# on loopback, daemon start-up, waiting for workers, tokens, and logs on failure.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
mkdir -p "$tmp/etc" "$tmp/etc-worker"
printf '[webrtc]\nloopback_candidates = true\n' > "$tmp/etc-worker/webrtc.toml"
# ONE_UDP_PORT=N: every WebRTC connection of the node shares UDP port N (minport = maxport).
if [ -n "${ONE_UDP_PORT:-}" ]; then
  printf 'minport = %s\nmaxport = %s\n' "$ONE_UDP_PORT" "$ONE_UDP_PORT" >> "$tmp/etc-worker/webrtc.toml"
fi

# portal.toml on loopback, without the sample app; arguments are extra lines for [portal].
write_portal_config() {
  {
    printf '[state]\ndir = "%s"\n[management-api]\nip_address = "127.0.0.1"\n' "$tmp/state"
    printf '[portal]\nip_address = "127.0.0.1"\nbind_address = "127.0.0.1"\n'
    for line in "$@"; do printf '%s\n' "$line"; done
    printf '[app]\nenabled = false\n'
  } > "$tmp/etc/portal.toml"
}

# `owtctl init`; prints the default room's id.
init_room() {
  "$bin/owtctl" --config-dir "$tmp/etc" init --json --no-cert | python3 -c 'import json,sys; print(json.load(sys.stdin)["room"]["id"])'
}

# start PROGRAM LOG: runs a daemon (the portal with etc/, workers with etc-worker/), its
# stderr in $tmp/LOG.log; the last one's pid is in $started.
start() {
  local dir="$tmp/etc-worker"
  [ "$1" = owt-portal ] && dir="$tmp/etc"
  "$bin/$1" --config-dir "$dir" 2>"$tmp/$2.log" &
  started=$!
  pids+=("$started")
}

# wait_workers KIND COUNT: until COUNT workers of KIND are registered (at most 10 s).
wait_workers() {
  for _ in $(seq 200); do
    local count
    count=$("$bin/owtctl" --config-dir "$tmp/etc" cluster --json 2>/dev/null | grep -o "\"kind\": *\"$1\"" | wc -l || true)
    if [ "$count" -ge "$2" ]; then return 0; fi
    sleep 0.05
  done
}

# tok USER: a presenter token for $room.
# The SFU setup most drivers use: the portal with the default config, a room (in $room), one
# webrtc node registered.
start_sfu() {
  write_portal_config
  room=$(init_room)
  start owt-portal portal
  start owt-webrtc webrtc
  wait_workers webrtc 1
}

tok() { "$bin/owtctl" --config-dir "$tmp/etc" token create "$room" --user "$1" --role presenter; }

# show_logs NAME...: the end of each daemon log that exists, on stderr.
show_logs() {
  for log in "$@"; do
    if [ -f "$tmp/$log.log" ]; then echo "--- $log.log" >&2; tail -30 "$tmp/$log.log" >&2; fi
  done
}
