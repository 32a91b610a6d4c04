# cdfsync — the two commands that matter: `make demo` and `make test`.
SHELL := /bin/bash
APT_PACKAGES := libcurl4-openssl-dev liblmdb-dev libzstd-dev pkg-config curl python3
SWIFT ?= swift
RELEASE_BIN = $(shell $(SWIFT) build -c release --show-bin-path 2>/dev/null)

.PHONY: demo test deps build release bench bench-check conformance clean

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

## Build in release mode, start the simulator on the demo workspace, sync, append commits, sync again.
demo: release
	@bash scripts/demo.sh "$(RELEASE_BIN)"

## Everything CI checks: every Swift test (unit, integration over loopback, crash safety, Delta ground truth),
## then the Python proof suites (official databricks-sdk conformance, recorded shapes, delta-rs oracle check).
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build 2>&1 | tee .test-output.log; exit $${PIPESTATUS[0]}
	@if [ -f Tests/conformance/ci.sh ]; then bash Tests/conformance/ci.sh; fi

## End-to-end throughput harness (release build, simulator over loopback).
bench: release
	@bash scripts/throughput.sh "$(RELEASE_BIN)"

clean:
	rm -rf .build .demo .bench
