#!/usr/bin/env bash
set -euo pipefail
BIN=${1:?usage: throughput.sh <release bin dir> [harness args]}
shift
exec python3 "$(dirname "$0")/../Benchmarks/harness/throughput.py" --bin "$BIN" "$@"
