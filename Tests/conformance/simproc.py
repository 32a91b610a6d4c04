"""Starting and stopping dbsql-sim for the conformance scripts (standard library only)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

ADMIN_TOKEN = os.environ.get("DBSQL_SIM_ADMIN_TOKEN") or "conformance-admin"


class Sim:
    """One simulator process; `base` is its http://127.0.0.1:PORT."""

    def __init__(self, binary: str, workspace: Path, *extra: str):
        env = dict(os.environ, DBSQL_SIM_ADMIN_TOKEN=ADMIN_TOKEN)
        self.stderr_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"dbsql-sim-{os.getpid()}-{id(self)}.log"
        self._err = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([binary, "--workspace", str(workspace), "--port", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=self._err, text=True, env=env)
        line = self.proc.stdout.readline().strip()
        m = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"dbsql-sim did not start: stdout {line!r}; stderr {self.stderr_path.read_text()[-600:]!r}")
        self.base = m.group(1)

    def admin(self, method: str, path: str, body=None, token: str | None = None):
        """Call the simulator's admin interface under /_sim/. Returns (status, parsed body)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + "/_sim/" + path.lstrip("/"), data=data, method=method,
                                     headers={"Authorization": f"Bearer {token or ADMIN_TOKEN}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()
