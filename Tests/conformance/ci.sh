#!/usr/bin/env bash
# One entry point for the Python proof tooling (docs/conformance.md):
#   1. creates or reuses the venvs .venv-oracle, .venv-conformance and .venv-connector from the pinned
#      tools/requirements-*.txt (recreated when a requirements file changes);
#   2. builds dbsql-sim (skipped when DBSQL_SIM points at a binary);
#   3. runs generate.py --check, make_workspace.py --check, check_sim.py, check_schema.py, shapes.py, run.py,
#      connector.py;
#   4. prints every step's result and a final combined `N passed, N failed` line.
# Exit status: 0 only when every step ran and nothing failed.
#
# Environment: PYTHON (default python3, must be 3.11), DBSQL_SIM (prebuilt simulator binary),
# SWIFT (default swift), CONFORMANCE_LOG_DIR (default .build/conformance).
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
SWIFT=${SWIFT:-swift}
LOGS=${CONFORMANCE_LOG_DIR:-$ROOT/.build/conformance}
mkdir -p "$LOGS"

total_pass=0
total_fail=0
summary=()

venv() { # venv NAME REQUIREMENTS
    local dir=".venv-$1" req=$2
    if [ -x "$dir/bin/python" ] && cmp -s "$req" "$dir/.requirements"; then
        return 0
    fi
    echo "== creating $dir from $req"
    rm -rf "$dir"
    "$PY" -m venv "$dir" && "$dir/bin/pip" install -q --disable-pip-version-check -r "$req" && cp "$req" "$dir/.requirements"
}

record() { # record STEP PASSED FAILED
    total_pass=$((total_pass + $2))
    total_fail=$((total_fail + $3))
    summary+=("$(printf '%-22s %4d passed, %4d failed' "$1" "$2" "$3")")
}

step() { # step NAME COMMAND...
    local name=$1
    shift
    local log="$LOGS/$name.log"
    echo "== $name: $*"
    "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local last
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -z "$last" ]; then
        echo "!! $name ended (exit $rc) without a 'N passed, N failed' line"
        record "$name" 0 1
        return
    fi
    local p f
    p=$(echo "$last" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed$/\1/')
    f=$(echo "$last" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed$/\2/')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "!! $name exited $rc although it reported no failures"
        f=1
    fi
    record "$name" "$p" "$f"
}

setup_ok=1
venv oracle tools/requirements-oracle.txt || { echo "!! could not create .venv-oracle"; record venv-oracle 0 1; setup_ok=0; }
venv conformance tools/requirements-conformance.txt || { echo "!! could not create .venv-conformance"; record venv-conformance 0 1; setup_ok=0; }
venv connector tools/requirements-connector.txt || { echo "!! could not create .venv-connector"; record venv-connector 0 1; setup_ok=0; }

SIM=${DBSQL_SIM:-}
if [ -z "$SIM" ]; then
    echo "== building dbsql-sim"
    if "$SWIFT" build --product dbsql-sim 2>&1 | tail -n 5; then
        SIM="$("$SWIFT" build --show-bin-path)/dbsql-sim"
    else
        echo "!! swift build --product dbsql-sim failed"
        record build 0 1
    fi
fi

if [ -x .venv-oracle/bin/python ]; then
    step oracle-check .venv-oracle/bin/python fixtures/delta-oracle/generate.py --check
fi
step workspace-check "$PY" Tests/conformance/make_workspace.py --check
if [ -n "$SIM" ] && [ -x "$SIM" ]; then
    step check-sim "$PY" fixtures/delta-oracle/check_sim.py --sim "$SIM"
    if [ -x .venv-oracle/bin/python ]; then
        step check-schema .venv-oracle/bin/python fixtures/delta-oracle/check_schema.py --sim "$SIM"
    fi
    step shapes "$PY" Tests/conformance/shapes.py --sim "$SIM"
    if [ -x .venv-conformance/bin/python ]; then
        step sdk-conformance .venv-conformance/bin/python Tests/conformance/run.py --sim "$SIM"
    fi
    if [ -x .venv-connector/bin/python ]; then
        step connector .venv-connector/bin/python Tests/conformance/connector.py --sim "$SIM"
    fi
else
    echo "!! no simulator binary; check-sim, shapes and sdk-conformance not run"
    record simulator 0 1
fi

echo
echo "== summary"
for line in "${summary[@]}"; do echo "$line"; done
[ "$setup_ok" -eq 1 ] || echo "(setup problems above)"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
