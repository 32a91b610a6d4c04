#!/usr/bin/env bash
# Browser tests of the `cdfsync serve` console (tools/console_test.py) in headless Chromium: creates or reuses the
# venv .venv-console from the pinned tools/requirements-console.txt (recreated when it changes), then runs the
# tests against the debug binaries `swift build` made. Needs Debian's chromium and chromium-driver (make deps).
#
# Environment: PYTHON (default python3), SWIFT (default swift), CONSOLE_SCREENSHOTS (a directory for PNGs of the
# main screens, e.g. docs/img).
set -u -o pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
SWIFT=${SWIFT:-swift}
REQ=tools/requirements-console.txt
if ! { [ -x .venv-console/bin/python ] && cmp -s "$REQ" .venv-console/.requirements; }; then
    echo "== creating .venv-console from $REQ"
    rm -rf .venv-console
    "$PY" -m venv .venv-console && .venv-console/bin/pip install -q --disable-pip-version-check -r "$REQ" \
        && cp "$REQ" .venv-console/.requirements || { echo "console: 0 passed, 1 failed (venv)"; exit 1; }
fi
BIN=$("$SWIFT" build --show-bin-path)
for b in cdfsync dbsql-sim; do
    [ -x "$BIN/$b" ] || { echo "console: 0 passed, 1 failed ($BIN/$b is not built: run swift build)"; exit 1; }
done
exec .venv-console/bin/python tools/console_test.py --bin "$BIN" ${CONSOLE_SCREENSHOTS:+--screenshots "$CONSOLE_SCREENSHOTS"}
