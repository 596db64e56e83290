#!/usr/bin/env python3
"""Looks for planted secrets everywhere under a gateway state dir (e2e helper).

usage: scan_state.py STATE_DIR SECRETS_JSON [--allow NAME=REGEX ...]

SECRETS_JSON maps a name to a secret value. Every regular file is searched byte-wise, except
SQLite databases, whose rows are searched instead (every column of every table, including FTS
shadow tables and memory-index tables; zstd blobs are decompressed), and *.zst archives, which are
decompressed first. `--allow NAME=REGEX` allows secret NAME in files whose path (relative to the
state dir) matches REGEX: the config files legitimately hold the gateway's own token.

Prints one line per leak (file, where, secret NAME; never the value) and a JSON summary on the last
line: {"leaks": n, "placeholders": n, "sqlite_rows": n, "files": n, "raw_sqlite_hits": n}.
Exit status 1 when something leaked."""
import json
import os
import re
import sqlite3
import subprocess
import sys

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
PLACEHOLDER = b"[REDACTED:"


def unzstd(data):
    try:
        return subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True, timeout=60).stdout
    except Exception:
        return b""


def as_bytes(v):
    if v is None:
        return b""
    if isinstance(v, bytes):
        return unzstd(v) if v.startswith(ZSTD_MAGIC) else v
    return str(v).encode("utf-8", "surrogatepass")


def main():
    state, secrets_path = sys.argv[1], sys.argv[2]
    allow = {}
    args = sys.argv[3:]
    while args:
        if args[0] == "--allow":
            name, rx = args[1].split("=", 1)
            allow.setdefault(name, []).append(re.compile(rx))
            args = args[2:]
        else:
            sys.exit("unknown argument " + args[0])
    secrets = {k: v.encode() for k, v in json.load(open(secrets_path)).items()}
    # A secret may also be stored JSON-escaped (a PEM's newlines as \n).
    forms = {k: {v, json.dumps(v.decode())[1:-1].encode()} for k, v in secrets.items()}
    leaks = placeholders = rows = files = raw_sqlite = 0

    def check(rel, where, data):
        nonlocal leaks
        for name, fs in forms.items():
            if any(f in data for f in fs) and not any(rx.search(rel) for rx in allow.get(name, [])):
                print(f"LEAK {rel} {where}: {name}")
                leaks += 1

    for root, _dirs, names in os.walk(state):
        for n in names:
            path = os.path.join(root, n)
            rel = os.path.relpath(path, state)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            files += 1
            with open(path, "rb") as f:
                head = f.read(16)
            if head.startswith(b"SQLite format 3\x00"):
                try:
                    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
                    for t in tables:
                        try:
                            cur = db.execute(f'SELECT * FROM "{t}"')
                        except sqlite3.Error:
                            continue  # a virtual table of a module this sqlite lacks: its shadow tables are read
                        cols = [d[0] for d in cur.description]
                        for row in cur:
                            rows += 1
                            for c, v in zip(cols, row):
                                b = as_bytes(v)
                                if PLACEHOLDER in b and t in ("transcript_events", "trajectory_runtime_events"):
                                    placeholders += b.count(PLACEHOLDER)
                                check(rel, f"{t}.{c}", b)
                    db.close()
                except sqlite3.Error as e:
                    print(f"WARN cannot read {rel}: {e}")
                # Informational: freed pages may still hold old bytes (see docs/plugin.md).
                with open(path, "rb") as f:
                    raw = f.read()
                raw_sqlite += sum(1 for fs in forms.values() if any(x in raw for x in fs))
                continue
            if n.endswith("-wal") or n.endswith("-shm"):
                with open(path, "rb") as f:
                    raw = f.read()
                raw_sqlite += sum(1 for fs in forms.values() if any(x in raw for x in fs))
                continue
            with open(path, "rb") as f:
                data = f.read()
            if data.startswith(ZSTD_MAGIC):
                data = unzstd(data)
            if n.endswith(".jsonl") or ".jsonl." in n:
                placeholders += data.count(PLACEHOLDER)
            check(rel, "bytes", data)
    print(json.dumps({"leaks": leaks, "placeholders": placeholders, "sqlite_rows": rows, "files": files, "raw_sqlite_hits": raw_sqlite}))
    sys.exit(1 if leaks else 0)


if __name__ == "__main__":
    main()
