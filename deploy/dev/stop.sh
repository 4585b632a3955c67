#!/usr/bin/env bash
# Stops the dev PDS started by start.sh, by the PID it saved, and nothing else.
set -euo pipefail
CACHE="${MOODSYNC_DEV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moodsync-dev}"
STATE="$CACHE/run/state.env"
[[ -f "$STATE" ]] || { echo "dev PDS not running"; exit 0; }
pid="$(sed -n 's/^MOODSYNC_DEV_PID=//p' "$STATE")"
# Only ever our own process: a saved PID may have been reused since.
if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'devpds\.js'; then
  kill "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  echo "dev PDS (pid $pid) stopped"
fi
rm -f "$STATE"
