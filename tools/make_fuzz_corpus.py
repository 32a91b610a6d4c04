#!/usr/bin/env python3
"""Writes the seed corpus of the ResponseFuzz target (Fuzz/corpus/): each input is a mode byte, a cut byte, then a
body (see Fuzz/Sources/ResponseFuzz/main.swift). Seeds: every recorded Statement Execution API response body in
Tests/CDFSyncCoreTests/Fixtures/recorded-sea (as an envelope, and its metadata for the models), external-link files,
DESCRIBE HISTORY rows, and UTF-8 edge cases. Deterministic; run again after adding recordings."""
import json, os, hashlib, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = os.path.join(root, "Fuzz", "corpus")
os.makedirs(out, exist_ok=True)
seeds = []

def add(mode, cut, body):
    seeds.append(bytes([mode, cut]) + body)

rec = os.path.join(root, "Tests", "CDFSyncCoreTests", "Fixtures", "recorded-sea")
for name in sorted(os.listdir(rec)):
    if not name.endswith(".json"):
        continue
    doc = json.load(open(os.path.join(rec, name)))
    body = doc.get("response", {}).get("body")
    if body is None:
        continue
    raw = (body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))).encode()
    add(0, 7, raw)
    add(0, 0x80 | 3, raw)
    add(2, 0, raw)

files = [
    b'[["P-1","Ann","a@x.io","insert","3","2026-01-01T00:00:00.000Z"],["P-2",null,"","delete","3","2026-01-01T00:00:00.000Z"]]',
    b'[["\\u00e9\\ud83d\\ude00","\\"\\\\\\/\\b\\f\\n\\r\\t"],["\xc3\xa9","\xf0\x9f\x98\x80"]]',
    b'[["\xc3\x28"],["\xed\xa0\x80"],["\xf4\x90\x80\x80"]]',
    b'[]',
]
for f in files:
    add(1, 5, f)
    add(1, 0x80 | 2, f)

history = [
    ["6", "2026-03-02T09:15:00.000Z", "1", "sync-bot", "MERGE", '{"predicate":"[]"}', None, None, None, "5",
     "WriteSerializable", "false",
     '{"numTargetRowsInserted":"2","numTargetRowsUpdated":"8","numTargetRowsDeleted":"0","numOutputRows":"10"}',
     None, "Databricks-Runtime/15.4"],
    ["5", "2026-03-01T09:15:00.000Z", "1", "sync-bot", "WRITE", '{"mode":"Append"}', None, None, None, "4",
     "WriteSerializable", "true", '{"numOutputRows":"9223372036854775807","numFiles":"1"}', None, None],
    ["4", "2026-03-01T08:15:00.000Z", "1", "sync-bot", "RENAME COLUMN",
     '{"oldColumnPath":"email","newColumnPath":"email_address"}', None, None, None, "3", "WriteSerializable",
     "false", '{"numUpdatedRows":5e18,"numDeletedRows":-1}', None, None],
]
add(3, 9, json.dumps(history).encode())
add(3, 9, json.dumps([["9223372036854775807"] + history[0][1:]] + history[1:]).encode())

for s in seeds:
    with open(os.path.join(out, hashlib.sha1(s).hexdigest()[:16]), "wb") as fh:
        fh.write(s)
print(f"{len(seeds)} seeds in {os.path.relpath(out, root)}")
