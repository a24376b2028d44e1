#!/usr/bin/env python3
"""The SQL of one work-queue receive on the embedded backend, before and
after fairness groups: the plain oldest-first select, and the group
skip-scan plus per-group selects, over a queue of N messages (one tenant,
or one tenant's backlog beside another's small batch). Prints µs per
receive (median of repeated runs); the statements are those of
functions/local/src/queue.rs, on Python's SQLite.

    benches/fair_receive.py [N ...]
"""
import sqlite3
import statistics
import sys
import time

SCHEMA = """
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, body TEXT NOT NULL,
    visible_ms INTEGER NOT NULL, receive_count INTEGER NOT NULL DEFAULT 0, receipt TEXT,
    dead INTEGER NOT NULL DEFAULT 0, claimed INTEGER NOT NULL DEFAULT 0,
    grp TEXT NOT NULL DEFAULT '', weight INTEGER NOT NULL DEFAULT 1);
CREATE INDEX messages_ready ON messages (queue, dead, id);
CREATE INDEX messages_depth ON messages (queue, dead, visible_ms, receive_count);
CREATE INDEX messages_by_group ON messages (queue, dead, grp, id);
"""
RECEIVE = """SELECT id, body, receive_count FROM messages INDEXED BY messages_ready
     WHERE queue = ?1 AND dead = ?2 AND visible_ms <= ?3 ORDER BY id LIMIT ?4"""
GROUPS = """WITH RECURSIVE g(grp) AS (
         SELECT min(grp) FROM messages INDEXED BY messages_by_group WHERE queue = ?1 AND dead = ?2
         UNION ALL
         SELECT (SELECT min(grp) FROM messages INDEXED BY messages_by_group
                 WHERE queue = ?1 AND dead = ?2 AND grp > g.grp)
         FROM g WHERE g.grp IS NOT NULL)
     SELECT grp, (SELECT weight FROM messages INDEXED BY messages_by_group
                  WHERE queue = ?1 AND dead = ?2 AND grp = g.grp ORDER BY id LIMIT 1)
     FROM g WHERE grp IS NOT NULL"""
RECEIVE_GROUP = """SELECT id, body, receive_count FROM messages INDEXED BY messages_by_group
     WHERE queue = ?1 AND dead = ?2 AND grp = ?3 AND visible_ms <= ?4 ORDER BY id LIMIT ?5"""
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
