# cdfsync — the two commands that matter: `make demo` and `make test`.
SHELL := /bin/bash
APT_PACKAGES := libcurl4-openssl-dev liblmdb-dev libzstd-dev pkg-config curl python3 python3-venv tmux chromium chromium-driver
SWIFT ?= swift
RELEASE_BIN = $(shell $(SWIFT) build -c release --show-bin-path 2>/dev/null)

.PHONY: demo test deps build release install install-files install-check manual bench bench-check bench-thresholds bench-baseline bench-storage conformance fuzz clean console-test

## Install the system packages cdfsync needs, if any is missing (Debian 12).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product cdfsync
	$(SWIFT) build -c release --product dbsql-sim

## Install both binaries, shell completions (bash, zsh, fish), the cdfsync(1) man page and the systemd unit of
## `cdfsync serve` under PREFIX (DESTDIR for staging): make install PREFIX=/usr/local
PREFIX ?= /usr/local
DESTDIR ?=
MANUAL_CONFIGURATION ?= release
MANUAL = .build/plugins/GenerateManual/outputs/cdfsync/cdfsync.1
install: release
	@$(MAKE) --no-print-directory manual MANUAL_CONFIGURATION=release
	@$(MAKE) --no-print-directory install-files BIN_DIR="$(RELEASE_BIN)"

## The man page, generated from the command tree by swift-argument-parser's generate-manual plugin.
manual:
	$(SWIFT) package plugin generate-manual --configuration $(MANUAL_CONFIGURATION) --section 1 >/dev/null
	@test -s $(MANUAL) || { echo "manual: $(MANUAL) was not generated"; exit 1; }

## What `install` copies, from binaries already built in BIN_DIR (and the man page from `make manual`).
install-files:
	@test -x "$(BIN_DIR)/cdfsync" && test -x "$(BIN_DIR)/dbsql-sim" || { echo "install-files: no cdfsync and dbsql-sim in BIN_DIR=$(BIN_DIR)"; exit 1; }
	@test -s $(MANUAL) || { echo "install-files: no man page at $(MANUAL); run make manual"; exit 1; }
	bash scripts/install.sh "$(BIN_DIR)" "$(DESTDIR)" "$(PREFIX)" "$(MANUAL)"

## `make install` into a scratch PREFIX from the debug build, then checks what it installed (part of `make test`).
install-check:
	@$(MAKE) --no-print-directory manual MANUAL_CONFIGURATION=debug
	@rm -rf .build/install-check
	@$(MAKE) --no-print-directory install-files BIN_DIR="$$($(SWIFT) build --show-bin-path)" DESTDIR="$(CURDIR)/.build/install-check" PREFIX=/usr/local >/dev/null
	bash scripts/check-install.sh "$(CURDIR)/.build/install-check" /usr/local

## Build in release mode, start the simulator on the demo workspace, sync, append commits, sync again.
demo: release
	@bash scripts/demo.sh "$(RELEASE_BIN)"

## Everything CI checks: every Swift test (unit, integration over loopback, crash safety, Delta ground truth),
## then the Python proof suites (official databricks-sdk conformance, recorded shapes, delta-rs oracle check).
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build 2>&1 | tee .test-output.log; exit $${PIPESTATUS[0]}
	@if [ -f Tests/conformance/ci.sh ]; then bash Tests/conformance/ci.sh; fi
	@$(MAKE) --no-print-directory console-test
	@$(MAKE) --no-print-directory install-check
	@$(MAKE) --no-print-directory fuzz

## The serve console in headless Chromium (selenium, pinned in tools/requirements-console.txt; Debian's chromium and
## chromium-driver): sign in, add and test a connection, discover, create a pipeline from suggestions, check types,
## preview, save, run now, open the run's record, replay dry run; activation: preview, confirmation screen, run, the
## invitation ledger, deactivate. CONSOLE_SCREENSHOTS=docs/img refreshes the
## screenshots in docs/serve.md.
console-test: deps
	$(SWIFT) build
	bash tools/console-test.sh

## libFuzzer over what cdfsync reads from the wire (Fuzz/): FUZZ_SECONDS on a copy of the committed corpus
## (Fuzz/corpus); a crash leaves its input in .build/fuzz/ and fails the target.
FUZZ_SECONDS ?= 60
fuzz: deps
	$(SWIFT) build -c release --package-path Fuzz -Xswiftc -sanitize=fuzzer -Xlinker --allow-multiple-definition
	@rm -rf .build/fuzz && mkdir -p .build/fuzz/corpus && cp Fuzz/corpus/* .build/fuzz/corpus/
	Fuzz/.build/release/ResponseFuzz -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 \
	  -artifact_prefix=.build/fuzz/ .build/fuzz/corpus 2>&1 | grep -E "^(#|Done|==|SUMMARY|stat::number_of_executed_units|artifact)" | tail -8; \
	  rc=$${PIPESTATUS[0]}; if [ $$rc != 0 ]; then echo "fuzz: FAILED (exit $$rc); inputs in .build/fuzz/"; fi; exit $$rc

## End-to-end throughput harness (release build, simulator over loopback).
bench: release
	@bash scripts/throughput.sh "$(RELEASE_BIN)"

## Micro-benchmark gate (Benchmarks/, ordo-one/benchmark): mallocCountTotal of every benchmark against the
## thresholds committed for this toolchain under Benchmarks/Thresholds/<swift version>/. Fails on a regression.
SWIFT_VERSION = $(shell $(SWIFT) --version 2>&1 | sed -n 's/.*Swift version \([0-9][0-9.]*\).*/\1/p' | head -1)
BENCH_THRESHOLDS = $(CURDIR)/Benchmarks/Thresholds/$(SWIFT_VERSION)
BENCH_GATE_METRICS = --metric mallocCountTotal
bench-check: deps
	@test -d "$(BENCH_THRESHOLDS)" || { echo "no thresholds for Swift $(SWIFT_VERSION) in $(BENCH_THRESHOLDS); create them with: make bench-thresholds"; exit 1; }
	@log=$$(mktemp); $(SWIFT) package --package-path Benchmarks benchmark thresholds check --path "$(BENCH_THRESHOLDS)" \
	  $(BENCH_GATE_METRICS) --no-progress 2>&1 | tee $$log; rc=$${PIPESTATUS[0]}; \
	if [ $$rc != 0 ] && grep -q "BETTER than the defined thresholds" $$log && ! grep -q "worse than threshold" $$log; then \
	  echo "bench-check: improvements only; tighten with 'make bench-thresholds' and commit the new files"; rc=0; fi; \
	rm -f $$log; if [ $$rc != 0 ]; then echo "bench-check: FAILED (exit $$rc)"; else echo "bench-check: OK"; fi; exit $$rc

## Rewrite the committed thresholds for this toolchain from a fresh run (review the diff before committing).
bench-thresholds: deps
	mkdir -p "$(BENCH_THRESHOLDS)"
	$(SWIFT) package --package-path Benchmarks --allow-writing-to-package-directory benchmark thresholds update \
	  --path "$(BENCH_THRESHOLDS)" $(BENCH_GATE_METRICS) --no-progress

## The storage layer alone on a million rows (Benchmarks/Sources/storage-throughput): wall and thread CPU per phase.
## STORAGE_BENCH="apply --keys sequential", "raw-lmdb", "full-sync --contact --durability durable", …
STORAGE_BENCH ?= full-sync
bench-storage: deps
	$(SWIFT) run -c release --package-path Benchmarks storage-throughput $(STORAGE_BENCH)

## The Python baseline (databricks-sdk, orjson, py-lmdb, zstandard) against the simulator: full + incremental sync.
BASELINE_ROWS ?= 1000000
bench-baseline: release
	python3 Benchmarks/harness/baseline_runner.py --bin "$(RELEASE_BIN)" --rows $(BASELINE_ROWS)

clean:
	rm -rf .build .demo .bench Fuzz/.build
