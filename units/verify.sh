#!/bin/sh
# Check the systemd units in this folder with `systemd-analyze verify`.
#
# The templates are instantiated into a temporary directory with @bindir@ pointing at executable stubs
# there (verify refuses an ExecStart= that does not exist) and @sysconfdir@ at /etc, then verified
# together with owt.target.
# Fails when systemd-analyze exits non-zero, or when it has anything to say about our units (unknown
# keys and unparsable values are only logged by systemd-analyze, its exit status stays 0).
# Takes no arguments; PID 1 need not be systemd.
set -eu

here=$(cd "$(dirname "$0")" && pwd)

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "units/verify.sh: systemd-analyze not found (Debian package: systemd)" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

for tpl in "$here"/owt-*.service.in; do
    unit=$(basename "$tpl" .in)
    name=$(basename "$tpl" .service.in)
    sed "s|@bindir@|$tmp|g; s|@sysconfdir@|/etc|g" "$tpl" >"$tmp/$unit"
    printf '#!/bin/sh\nexit 0\n' >"$tmp/$name"
    chmod 0755 "$tmp/$name"
done
cp "$here/owt.target" "$tmp/owt.target"

if grep -n '@[a-z]*@' "$tmp"/*.service; then
    echo "units/verify.sh: unsubstituted template variables above" >&2
    exit 1
fi

status=0

# The check itself, at debug level: its full log is kept for when the reason is not one of ours.
if ! SYSTEMD_LOG_LEVEL=debug systemd-analyze verify --man=no "$tmp"/*.service "$tmp/owt.target" \
        >"$tmp/debug.log" 2>&1; then
    status=1
fi

# At the default level it prints only warnings and errors: none may concern our units.
SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$tmp"/*.service "$tmp/owt.target" \
    >"$tmp/notice.log" 2>&1 || true
if grep -E "owt|$tmp" "$tmp/notice.log" >"$tmp/ours.log"; then
    status=1
elif [ "$status" -ne 0 ]; then
    tail -n 40 "$tmp/debug.log" >"$tmp/ours.log"
fi

if [ "$status" -eq 0 ]; then
    echo "units/verify.sh: ok ($(cd "$tmp" && ls *.service owt.target | tr '\n' ' '))"
else
    echo "units/verify.sh: systemd-analyze verify failed:" >&2
    cat "$tmp/ours.log" >&2
fi
exit "$status"
