#!/usr/bin/env bash
# Checks what `make install` put under DESTDIR/PREFIX (usage: check-install.sh DESTDIR PREFIX; `make install-check`).
set -euo pipefail
dest="$1$2"
failed=0 passed=0
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then passed=$((passed + 1)); else echo "install-check: FAILED: $what"; failed=$((failed + 1)); fi
}
check "cdfsync is installed and runs" test "$("$dest/bin/cdfsync" --version)" != ""
check "dbsql-sim is installed and runs" "$dest/bin/dbsql-sim" --help
check "cdfsync(1) has its title" grep -q '^\.Dt CDFSYNC 1' "$dest/share/man/man1/cdfsync.1"
for sub in sync replay schedule status runs panel connection discover pipeline; do
  check "cdfsync(1) documents $sub" grep -q "$sub" "$dest/share/man/man1/cdfsync.1"
done
check "cdfsync(1) documents --json" grep -q 'json' "$dest/share/man/man1/cdfsync.1"
if command -v man >/dev/null; then
  check "cdfsync(1) renders with man" bash -c "man -l '$dest/share/man/man1/cdfsync.1' 2>/dev/null | grep -q 'SYNOPSIS'"
fi
if command -v mandoc >/dev/null; then
  check "cdfsync(1) renders" mandoc -Tlint -Werror "$dest/share/man/man1/cdfsync.1"
fi
check "bash completion defines its function" grep -q '^_cdfsync()' "$dest/share/bash-completion/completions/cdfsync"
check "bash completion loads" bash -c "source '$dest/share/bash-completion/completions/cdfsync' && complete -p cdfsync"
check "zsh completion is a compdef" grep -q '^#compdef cdfsync' "$dest/share/zsh/site-functions/_cdfsync"
check "fish completion names the subcommands" grep -q 'replay' "$dest/share/fish/vendor_completions.d/cdfsync.fish"
unit="$dest/lib/systemd/system/cdfsync.service"
check "the unit runs the installed binary" grep -q "^ExecStart=$2/bin/cdfsync serve --pipelines /etc/cdfsync/pipelines --state-dir /var/lib/cdfsync$" "$unit"
for option in 'User=cdfsync' 'StateDirectory=cdfsync' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'CapabilityBoundingSet=$'; do
  check "the unit sets $option" grep -q "^$option" "$unit"
done
check "the service user is declared" grep -q '^u cdfsync ' "$dest/lib/sysusers.d/cdfsync.conf"
if command -v systemd-analyze >/dev/null; then
  # Verified as installed, but with ExecStart at the staged binary (verify wants it to exist).
  staged=$(mktemp -d)/cdfsync.service
  sed "s|^ExecStart=$2/bin/cdfsync |ExecStart=$dest/bin/cdfsync |" "$unit" > "$staged"
  check "systemd-analyze accepts the unit" systemd-analyze verify --man=no "$staged"
  rm -rf "$(dirname "$staged")"
fi
echo "install-check: $passed passed, $failed failed"
[ "$failed" = 0 ]
