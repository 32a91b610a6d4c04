#!/usr/bin/env bash
# The demo: the import flow an admin follows, on a simulated Databricks SQL warehouse on loopback.
#   connection add → connection test → discover → pipeline init → validate → preview → activation (confirmed)
#   → sync → invitations → new commits arrive → a run triggered on `cdfsync serve` → a sync with nothing new
#   → runs → status
# then the quick raw copy (`sync --table --key`). Everything it writes goes under .demo/.
set -euo pipefail
BIN=$(cd "${1:?usage: demo.sh <release bin dir>}" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO="$ROOT/.demo"
rm -rf "$DEMO"; mkdir -p "$DEMO"
ADMIN_TOKEN="demo-admin-$$"
CDFSYNC="$BIN/cdfsync"
# Saved connections and their encrypted secrets live here for the demo (default: ~/.config/cdfsync).
export CDFSYNC_CONFIG_DIR="$DEMO/config"
step() { echo; echo "== $*"; }
show() { printf '$ cdfsync'; printf ' %q' "$@"; echo; "$CDFSYNC" "$@"; }

step "starting the simulated warehouse (fixtures/demo-workspace.json)"
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
WAREHOUSE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["warehouses"][0]["id"])' "$ROOT/fixtures/demo-workspace.json")

cd "$DEMO"
step "1. save the connection (the token is read from stdin and stored encrypted, never echoed)"
echo "dapi-demo-token" | show connection add demo --host "$URL" --warehouse-id "$WAREHOUSE" --secret-stdin

step "2. test it, step by step"
show connection test demo

step "3. discover what the identity may read"
show discover demo

step "4. a pipeline from the source's columns and a sample of its values: the mapping suggested, each with its reason"
echo '$ cdfsync pipeline init --source main.research.participants --connection demo > participants.yaml'
"$CDFSYNC" pipeline init --source main.research.participants --connection demo >participants.yaml
sed -n '/^name:/,/^# schedule/p' participants.yaml | grep -v '^$'

step "5. validate it against the live schema"
show pipeline validate participants.yaml

step "6. preview: the query the pipeline builds and its first rows as the sync maps them"
show pipeline preview participants.yaml --limit 3

step "7. what happens to new eligible participants: an invitation to a study, from the UK or Ireland"
cat >>participants.yaml <<'YAML'

activation:
  invite_study: S-DEMO-01
  eligibility:
    - {field: country, op: in, value: [GB, IE]}
YAML
sed -n '/^activation:/,$p' participants.yaml | sed 's/^/   /'
show pipeline validate participants.yaml

step "8. a sync before anyone confirms: people are imported, invitations are held"
show sync participants.yaml

step "9. confirm the activation: the preview of what happens now, then the confirmation (--yes: no prompt)"
show pipeline activate participants.yaml --yes

step "10. the next sync sends what was held: invitations-*.ndjson.zst, each (participant, study) once"
show sync participants.yaml
show invitations participants.yaml

step "appending new commits through the simulator's admin API (fixtures/demo-commits-2.json)"
python3 - "$ROOT/fixtures/demo-commits-2.json" "$URL" "$ADMIN_TOKEN" <<'PY'
import datetime, json, sys, urllib.request
doc, url, token = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
# New commits arrived a moment ago, a second apart (the fixture's own dates are the day after the table's last commit).
now = datetime.datetime.now(datetime.timezone.utc)
for i, c in enumerate(doc["commits"]):
    c["timestamp"] = (now - datetime.timedelta(seconds=len(doc["commits"]) - i)).strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    req = urllib.request.Request(f"{url}/_sim/tables/{doc['table']}/commits", method="POST",
        data=json.dumps(c).encode(), headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
    n = lambda k: len(c.get(k, []))
    print(f"   v{c['version']} {c['operation']}: {n('insert')} inserts, {n('update')} updates, {n('delete')} deletes")
PY

step "11. the same pipeline as a service: cdfsync serve, and a run triggered over its API (docs/serve.md)"
mkdir -p pipelines && cp participants.yaml pipelines/
echo '$ cdfsync serve --pipelines pipelines --port 0 &'
"$CDFSYNC" serve --pipelines pipelines --port 0 >"$DEMO/serve.out" 2>"$DEMO/serve.log" &
SERVE_PID=$!
trap 'kill $SERVE_PID $SIM_PID 2>/dev/null; wait $SERVE_PID $SIM_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q 'listening on ' "$DEMO/serve.out" 2>/dev/null && break
  kill -0 $SERVE_PID 2>/dev/null || { echo "cdfsync serve failed to start:"; cat "$DEMO/serve.log"; exit 1; }
  sleep 0.1
done
SERVE=$(sed -n 's|^cdfsync serve: listening on \(http://[^/]*\)/$|\1|p' "$DEMO/serve.out")
[ -n "$SERVE" ] || { echo "cdfsync serve did not report its address"; cat "$DEMO/serve.log"; exit 1; }
echo "   $SERVE (pid $SERVE_PID; the console is at $SERVE/)"
echo "\$ curl -X POST $SERVE/api/pipelines/participants/run"
curl -fsS -X POST "$SERVE/api/pipelines/participants/run"; echo
python3 - "$SERVE" <<'PY'
import json, sys, time, urllib.request
base = sys.argv[1]
get = lambda path: json.load(urllib.request.urlopen(base + path))
deadline = time.time() + 120
while True:
    p = get("/api/pipelines/participants")
    if p["last_outcome"] and not p["running"] and not p["queued"]:
        break
    if time.time() > deadline:
        sys.exit("the triggered run did not end within 120 s")
    time.sleep(0.2)
run, outcome = p["last_run"], p["last_outcome"]
print(f"   run {outcome['run_id']} {outcome['result']}: {run['read']}")
print("   counts: " + ", ".join(f"{k} {v}" for k, v in run["counts"].items() if isinstance(v, int) and v))
print(f"   checkpoint v{p['checkpoint']['version']}; freshness {p['freshness_seconds']:.0f} s after the last commit")
metrics = urllib.request.urlopen(base + "/metrics").read().decode()
for line in metrics.splitlines():
    if line.startswith(("cdfsync_runs_total", "cdfsync_rows_applied_total")) and 'pipeline="participants"' in line:
        print("   /metrics: " + line)
PY
kill -TERM $SERVE_PID
wait $SERVE_PID && echo "   SIGTERM: cdfsync serve stopped, exit 0"

step "12. sync again from the command line: nothing new"
show sync participants.yaml

step "13. the audit record of every run"
show runs

step "14. where the pipeline stands"
show status

step "the quick raw copy, for a first look at a table: no mapping, normalisation, identity or consent"
export DATABRICKS_HOST="$URL" DATABRICKS_TOKEN="dapi-demo-token"
show sync --warehouse-id "$WAREHOUSE" --table main.research.participants --key participant_id \
  --state-dir "$DEMO/raw-state" --output-dir "$DEMO/raw-out"
unset DATABRICKS_HOST DATABRICKS_TOKEN

PANEL=$("$CDFSYNC" panel export --no-progress | wc -l)
step "result"
echo "   panel: $PANEL participants in $DEMO/.cdfsync/state (LMDB)"
echo "   changes delivered as zstd NDJSON in $DEMO/.cdfsync/out/participants:"
ls -1 "$DEMO/.cdfsync/out/participants" | sed 's/^/     /'
echo "   invitations in $DEMO/.cdfsync/out/participants/invitations:"
ls -1 "$DEMO/.cdfsync/out/participants/invitations" 2>/dev/null | sed 's/^/     /'
echo "   read one with: zstdcat $DEMO/.cdfsync/out/participants/changes-*.ndjson.zst | head"
