#!/usr/bin/env python3
"""The SQL of one work-queue receive on the embedded backend, before and
after fairness groups: the plain oldest-first select, and the group
skip-scan plus per-group selects, over a queue of N messages (one tenant,
or one tenant's backlog beside another's small batch). Prints µs per
receive (median of repeated runs); the statements are read from
functions/local/src/queue.rs and db.rs and run on Python's SQLite.

    benches/fair_receive.py [N ...]
"""
import pathlib
import re
import sqlite3
import statistics
import sys
import time

LOCAL = pathlib.Path(__file__).resolve().parents[1] / "functions" / "local" / "src"


def rust_str(source: str, name: str) -> str:
    """The text of `const NAME: &str = "...";` in a Rust source (no escapes)."""
    return re.search(rf'const {name}: &str =\s*"(.*?)";', source, re.S).group(1)


# The statements themselves, read from the embedded backend's sources.
QUEUE = (LOCAL / "queue.rs").read_text()
DB = (LOCAL / "db.rs").read_text()
SCHEMA = rust_str(DB, "SCHEMA") + ";" + re.search(
    r'"(CREATE INDEX IF NOT EXISTS messages_by_group[^"]*)"', DB
).group(1)
RECEIVE = rust_str(QUEUE, "RECEIVE")
GROUPS = rust_str(QUEUE, "GROUPS")
RECEIVE_GROUP = rust_str(QUEUE, "RECEIVE_GROUP")
WANT = 10


def queue(n, small):
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    rows = [("work-normal", "x" * 200, 0, "bigco") for _ in range(n)]
    rows += [("work-normal", "x" * 200, 0, "smallco") for _ in range(small)]
    db.executemany("INSERT INTO messages (queue, body, visible_ms, grp) VALUES (?, ?, ?, ?)", rows)
    db.commit()
    return db


def plain(db):
    return db.execute(RECEIVE, ("work-normal", 0, 1, WANT)).fetchall()


def fair(db):
    groups = db.execute(GROUPS, ("work-normal", 0)).fetchall()
    if len(groups) <= 1:
        return plain(db)
    total = sum(weight for _, weight in groups)
    picked = []
    for group, weight in groups:
        share = max(WANT * weight // total, 1)
        picked += db.execute(RECEIVE_GROUP, ("work-normal", 0, group, 1, share)).fetchall()
    return picked


def per_receive(db, receive, repeats=2000):
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            receive(db)
        samples.append((time.perf_counter() - start) / repeats * 1e6)
    return statistics.median(samples)


print(f"SQLite {sqlite3.sqlite_version}; µs per receive of {WANT} (median of 5 × 2,000)")
print("| messages | tenants | oldest first | fair (groups + per group) | ratio |")
print("|---:|---:|---:|---:|---:|")
for n in [int(a) for a in sys.argv[1:]] or [10_000, 100_000, 500_000]:
    for small in (0, 100):
        db = queue(n, small)
        before, after = per_receive(db, plain), per_receive(db, fair)
        tenants = 2 if small else 1
        print(f"| {n + small:,} | {tenants} | {before:.1f} | {after:.1f} | {after / before:.2f} |")
