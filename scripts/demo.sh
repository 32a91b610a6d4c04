#!/usr/bin/env bash
# The demo: a simulated Databricks SQL warehouse on loopback, two syncs around new commits, and a third
# that finds nothing to do. Everything it writes goes under .demo/.
set -euo pipefail
BIN=${1:?usage: demo.sh <release bin dir>}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO="$ROOT/.demo"
rm -rf "$DEMO"; mkdir -p "$DEMO"
ADMIN_TOKEN="demo-admin-$$"

echo "== starting the simulated warehouse (fixtures/demo-workspace.json)"
DBSQL_SIM_ADMIN_TOKEN="$ADMIN_TOKEN" "$BIN/dbsql-sim" --workspace "$ROOT/fixtures/demo-workspace.json" --port 0 \
  >"$DEMO/sim.out" 2>"$DEMO/sim.log" &
SIM_PID=$!
trap 'kill $SIM_PID 2>/dev/null; wait $SIM_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$DEMO/sim.out" 2>/dev/null && break
  kill -0 $SIM_PID 2>/dev/null || { echo "simulator failed to start:"; cat "$DEMO/sim.log"; exit 1; }
  sleep 0.1
done
URL=$(sed -n 's/^listening on //p' "$DEMO/sim.out")
[ -n "$URL" ] || { echo "simulator did not report its address"; cat "$DEMO/sim.log"; exit 1; }
echo "   $URL (pid $SIM_PID)"

export DATABRICKS_HOST="$URL" DATABRICKS_TOKEN="dapi-demo-token"
WAREHOUSE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["warehouses"][0]["id"])' "$ROOT/fixtures/demo-workspace.json")
SYNC=("$BIN/cdfsync" sync --warehouse-id "$WAREHOUSE" --table main.research.participants --key participant_id
      --state-dir "$DEMO/state" --output-dir "$DEMO/out")

echo; echo "== sync 1: everything so far"
"${SYNC[@]}"

echo; echo "== appending new commits through the simulator's admin API (fixtures/demo-commits-2.json)"
python3 - "$ROOT/fixtures/demo-commits-2.json" "$URL" "$ADMIN_TOKEN" <<'PY'
import datetime, json, sys, urllib.request
doc, url, token = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
# New commits arrive now (the fixture's own dates are the day after the table's last commit).
now = datetime.datetime.now(datetime.timezone.utc)
for i, c in enumerate(doc["commits"]):
    c["timestamp"] = (now + datetime.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    req = urllib.request.Request(f"{url}/_sim/tables/{doc['table']}/commits", method="POST",
        data=json.dumps(c).encode(), headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
    n = lambda k: len(c.get(k, []))
    print(f"   v{c['version']} {c['operation']}: {n('insert')} inserts, {n('update')} updates, {n('delete')} deletes")
PY

echo; echo "== sync 2: only the new commits"
"${SYNC[@]}"

echo; echo "== sync 3: nothing new"
"${SYNC[@]}"

echo; echo "== runs recorded"
"$BIN/cdfsync" runs --state-dir "$DEMO/state"

PANEL=$("$BIN/cdfsync" panel export --state-dir "$DEMO/state" | wc -l)
echo; echo "== result"
echo "   panel: $PANEL participants in $DEMO/state (LMDB)"
echo "   changes delivered as zstd NDJSON in $DEMO/out:"
ls -1 "$DEMO/out" | sed 's/^/     /'
echo "   read one with: zstdcat $DEMO/out/changes-*.ndjson.zst | head"
