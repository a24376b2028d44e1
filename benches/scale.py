#!/usr/bin/env python3
"""How `docket run` cost grows with the batch size N.

    python3 benches/scale.py --docket ~/.cache/docket/target/release/docket \\
        --sizes 10000,100000,500000 --evaluators wordstats,decalogo \\
        --work /tmp/scale-work --label before

For every size N it generates (once; later runs reuse it) a corpus of N text
documents of ~5 KB in WORK/corpus-N/dXXXX/XXXXXX.txt, at most 1,000 files per
subdirectory. The text is English prose from /usr/share/doc (changelogs,
copyright, README and NEWS files, gzipped or not), whitespace collapsed and
repeated lines dropped; every document is a different, seeded window of it,
headed by its own id, so no two documents are alike and a rerun writes the
same bytes. Too little prose there falls back to seeded generated words.

For every (evaluator, N) it runs, with a fresh state and out directory,

    DOCKET run --quiet --evaluator E --state STATE --out OUT CORPUS

under /usr/bin/time -v when present (else the child's own rusage from
wait4), and reports wall seconds, docs/s end to end, the processing items/s
and finalize seconds docket prints, peak RSS, CPU µs per document
(user + sys), and the disk use of the state and out directories. The table
is printed and appended to WORK/scale-results.md; docket's stdout and stderr
stay in WORK/logs/. State and out directories are deleted after each run
unless --keep; corpora are kept.

Standard library only (python3.11). Exits non-zero if a docket run does,
after printing the rows done so far.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gzip
import os
import platform
import random
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DOC_ROOT = Path("/usr/share/doc")
FILES_PER_DIR = 1000
DOC_BYTES = 5 * 1024            # target size of one document
MIN_PROSE_BYTES = 1 << 20       # less prose than this: fall back to generated words
MAX_PROSE_BYTES = 24 << 20      # stop collecting prose here
MAX_FILE_BYTES = 2 << 20        # read at most this much of one file
MIB = 1 << 20
TIME_BIN = "/usr/bin/time"
STATUS_PROBE_BYTES = 64 * 1024
CORPUS_MARKER = ".scale-corpus"  # written last: "count seed doc_bytes"


def log(message: str) -> None:
    print(f"[scale] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# prose

_SOURCE_NAME = re.compile(r"^(changelog|copyright|readme|news)", re.IGNORECASE)
_WS = re.compile(r"\s+")
_PLAIN_WORD = re.compile(r"[A-Za-z][a-z]*(?:['’-][A-Za-z]+)?")


def _source_files() -> list[Path]:
    if not DOC_ROOT.is_dir():
        return []
    found = []
    for root, dirs, files in os.walk(DOC_ROOT):
        dirs.sort()
        for name in sorted(files):
            if _SOURCE_NAME.match(name) and (name.endswith(".gz") or "." not in name
                                             or name.lower().endswith((".md", ".txt", ".rst"))):
                path = Path(root, name)
                if path.is_file():
                    found.append(path)
    return found


def _read_text(path: Path) -> str:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read(MAX_FILE_BYTES)
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_FILE_BYTES)
    except (OSError, EOFError, gzip.BadGzipFile):
        return ""
    if b"\0" in data[:4096]:
        return ""
    return data.decode("utf-8", errors="replace")


def _prose_line(line: str) -> str | None:
    """A line worth keeping as prose, whitespace collapsed, or None."""
    line = _WS.sub(" ", line).strip().lstrip("*-+#>|").strip()
    if len(line) < 30 or "@" in line or "://" in line:
        return None
    letters = sum(c.isalpha() or c == " " for c in line)
    if letters < 0.85 * len(line):
        return None
    # Mostly plain words: file lists, identifiers and version strings are not prose.
    tokens = [t.strip(".,;:!?()[]\"'`") for t in line.split()]
    words = sum(1 for t in tokens if _PLAIN_WORD.fullmatch(t))
    if len(tokens) < 6 or words < 0.8 * len(tokens) or sum(t.islower() for t in tokens) < 0.5 * len(tokens):
        return None
    return line


def collect_prose() -> str:
    seen: set[str] = set()
    kept: list[str] = []
    size = 0
    files = _source_files()
    for path in files:
        for raw in _read_text(path).splitlines():
            line = _prose_line(raw)
            if line is None or line in seen:
                continue
            seen.add(line)
            kept.append(line)
            size += len(line) + 1
        if size >= MAX_PROSE_BYTES:
            break
    text = " ".join(kept)
    log(f"prose: {len(kept)} distinct lines, {len(text) / MIB:.1f} MiB from {len(files)} files under {DOC_ROOT}")
    return text


def generated_words(seed: int, size: int) -> str:
    rng = random.Random(seed)
    syllables = ["an", "ber", "cal", "dor", "en", "fra", "gal", "hor", "is", "jun", "ka",
                 "lor", "men", "nor", "o", "pra", "qui", "ret", "sol", "tan", "u", "ver", "wes"]
    vocabulary = sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(1, 4)))
                         for _ in range(5000)})
    weights = [1.0 / (rank + 1) for rank in range(len(vocabulary))]  # Zipf-like
    words = []
    total = 0
    while total < size:
        sentence = rng.choices(vocabulary, weights, k=rng.randint(6, 22))
        sentence[0] = sentence[0].capitalize()
        s = " ".join(sentence) + "."
        words.append(s)
        total += len(s) + 1
    return " ".join(words)


def source_text(seed: int) -> str:
    text = collect_prose()
    if len(text) < MIN_PROSE_BYTES:
        log(f"too little prose ({len(text)} bytes); using generated words")
        text = generated_words(seed, 8 * MIB)
    return text


# --------------------------------------------------------------------------
# corpus

def _doc_path(root: Path, i: int) -> Path:
    return root / f"d{i // FILES_PER_DIR:04d}" / f"{i:06d}.txt"


def _count_docs(root: Path) -> int:
    n = 0
    for _, _, files in os.walk(root):
        n += sum(1 for f in files if f.endswith(".txt"))
    return n


def _paragraphs(window: str, rng: random.Random) -> str:
    """Break a window into paragraphs of a few hundred characters, on spaces."""
    out = []
    start = 0
    while start < len(window):
        end = start + rng.randint(400, 1200)
        if end >= len(window):
            out.append(window[start:])
            break
        space = window.find(" ", end)
        if space < 0:
            out.append(window[start:])
            break
        out.append(window[start:space])
        start = space + 1
    return "\n\n".join(out)


def ensure_corpus(work: Path, n: int, seed: int, text_cache: dict) -> Path:
    root = work / f"corpus-{n}"
    marker = root / CORPUS_MARKER
    expected = f"{n} {seed} {DOC_BYTES}"
    if root.is_dir():
        if marker.is_file() and marker.read_text().strip() == expected and _count_docs(root) == n:
            log(f"corpus-{n}: reusing {root}")
            return root
        log(f"corpus-{n}: exists but is incomplete or different; regenerating")
        shutil.rmtree(root)
    if "text" not in text_cache:
        text_cache["text"] = source_text(seed)
    text: str = text_cache["text"]
    # One seeded stream per N, so corpus-N is the same on every machine with the same /usr/share/doc.
    rng = random.Random(f"{seed}:{n}")
    span = max(1, len(text) - 2 * DOC_BYTES)
    tmp = work / f".corpus-{n}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    started = time.perf_counter()
    total = 0
    for i in range(n):
        if i % FILES_PER_DIR == 0:
            (tmp / f"d{i // FILES_PER_DIR:04d}").mkdir(parents=True, exist_ok=True)
        offset = rng.randrange(span)
        space = text.find(" ", offset)
        offset = offset if space < 0 else space + 1  # start on a word
        length = DOC_BYTES + rng.randint(-256, 256)
        window = text[offset:offset + length]
        cut = window.rfind(" ")
        if cut > length // 2:
            window = window[:cut]                    # end on a word
        body = f"Document {i:06d}\n\n{_paragraphs(window, rng)}\n"
        data = body.encode("utf-8")
        with open(_doc_path(tmp, i), "wb") as f:
            f.write(data)
        total += len(data)
        if n >= 50000 and (i + 1) % 50000 == 0:
            log(f"corpus-{n}: {i + 1}/{n} documents")
    (tmp / CORPUS_MARKER).write_text(expected + "\n")
    tmp.rename(root)
    log(f"corpus-{n}: {n} documents, {total / MIB:.0f} MiB ({total / max(n, 1):.0f} B/doc) "
        f"in {time.perf_counter() - started:.1f} s")
    return root


# --------------------------------------------------------------------------
# measuring

def disk_usage(path: Path) -> int:
    """Bytes allocated under path, like `du -s` (hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    if not path.exists():
        return 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += st.st_blocks * 512
    try:
        total += os.lstat(path).st_blocks * 512
    except OSError:
        pass
    return total


_TIME_FIELDS = {
    "user": re.compile(r"User time \(seconds\):\s*([\d.]+)"),
    "sys": re.compile(r"System time \(seconds\):\s*([\d.]+)"),
    "maxrss_kib": re.compile(r"Maximum resident set size \(kbytes\):\s*(\d+)"),
}


def parse_time_v(text: str) -> dict:
    out = {}
    for key, pattern in _TIME_FIELDS.items():
        m = pattern.search(text)
        if m:
            out[key] = float(m.group(1))
    return out


_JOB_LINE = re.compile(
    r"^job (\S+) (\S+) in ([\d.]+) s\s+\S+\s+(\d+) documents \((\d+) completed, (\d+) failed, (\d+) skipped\)",
    re.MULTILINE)
_PHASES_LINE = re.compile(r"^phases:(.*)$", re.MULTILINE)
_PHASE = re.compile(r"(\w+) ([\d.]+) s")
_ITEMS_PER_S = re.compile(r"processing [\d.]+ s \(([\d.]+) items/s\)")


def parse_summary(stdout: str) -> dict:
    out: dict = {}
    m = _JOB_LINE.search(stdout)
    if m:
        out.update(job_status=m.group(2), docket_seconds=float(m.group(3)),
                   documents=int(m.group(4)), completed=int(m.group(5)),
                   failed=int(m.group(6)), skipped=int(m.group(7)))
    m = _PHASES_LINE.search(stdout)
    if m:
        for name, seconds in _PHASE.findall(m.group(1)):
            out[f"{name}_s"] = float(seconds)
        items = _ITEMS_PER_S.search(m.group(1))
        if items:
            out["items_per_s"] = float(items.group(1))
    return out


def results_status(out_dir: Path) -> str | None:
    results = out_dir / "results.json"
    try:
        with open(results, "rb") as f:
            head = f.read(STATUS_PROBE_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return None
    m = re.search(r'"status"\s*:\s*"([^"]*)"', head)
    return m.group(1) if m else "?"


@dataclass
class Row:
    label: str
    evaluator: str
    n: int
    returncode: int = 0
    wall_s: float = 0.0
    cpu_s: float | None = None
    maxrss_mib: float | None = None
    state_mib: float = 0.0
    out_mib: float = 0.0
    status: str | None = None
    summary: dict = field(default_factory=dict)

    @property
    def docs_per_s(self) -> float:
        return self.n / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_us_per_doc(self) -> float | None:
        return None if self.cpu_s is None else self.cpu_s * 1e6 / self.n


def run_one(args, label: str, evaluator: str, n: int, corpus: Path) -> Row:
    work: Path = args.work
    # An evaluator may be a component's path: its file name names the run.
    tag = f"{Path(evaluator).name}-{n}"
    state = work / f"state-{tag}"
    out = work / f"out-{tag}"
    for d in (state, out):
        if d.exists():
            shutil.rmtree(d)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    stem = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', label or 'run')}-{tag}"
    stdout_path, stderr_path, time_path = (logs / f"{stem}.{ext}" for ext in ("stdout", "stderr", "time"))

    command = [str(args.docket), "run", "--quiet", "--evaluator", evaluator,
               "--state", str(state), "--out", str(out), str(corpus)]
    use_time = os.access(TIME_BIN, os.X_OK) and not args.no_time
    if use_time:
        command = [TIME_BIN, "-v", "-o", str(time_path)] + command
    log(f"run: {shlex.join(command)}")

    row = Row(label=label, evaluator=evaluator, n=n)
    with open(stdout_path, "wb") as so, open(stderr_path, "wb") as se:
        started = time.perf_counter()
        # cwd=work: nothing docket might write relative to its cwd lands in the source tree.
        proc = subprocess.Popen(command, stdout=so, stderr=se, stdin=subprocess.DEVNULL, cwd=work)
        # wait4 gives this child's own rusage (RUSAGE_CHILDREN's ru_maxrss would be the
        # largest of all children so far, i.e. an earlier, bigger run's peak).
        _, wait_status, usage = os.wait4(proc.pid, 0)
        row.wall_s = time.perf_counter() - started
        proc.returncode = row.returncode = os.waitstatus_to_exitcode(wait_status)

    if use_time:
        measured = parse_time_v(time_path.read_text(errors="replace")) if time_path.exists() else {}
        if "user" in measured and "sys" in measured:
            row.cpu_s = measured["user"] + measured["sys"]
        if "maxrss_kib" in measured:
            row.maxrss_mib = measured["maxrss_kib"] / 1024
    if row.cpu_s is None:   # no /usr/bin/time, or it printed nothing usable
        row.cpu_s = usage.ru_utime + usage.ru_stime
    if row.maxrss_mib is None:
        row.maxrss_mib = usage.ru_maxrss / 1024  # KiB on Linux

    stdout = stdout_path.read_text(errors="replace")
    row.summary = parse_summary(stdout)
    row.state_mib = disk_usage(state) / MIB
    row.out_mib = disk_usage(out) / MIB
    row.status = results_status(out)
    if row.returncode != 0:
        tail = stderr_path.read_text(errors="replace").strip().splitlines()[-15:]
        log(f"docket exited {row.returncode}; stderr tail:\n  " + "\n  ".join(tail))
    s = row.summary
    phases = " ".join(f"{k[:-2]}={s[k]:.2f}s" for k in ("intake_s", "submit_s", "processing_s",
                                                         "finalize_s", "output_s") if k in s)
    log(f"done: {tag} rc={row.returncode} wall={row.wall_s:.2f}s {row.docs_per_s:.0f} docs/s "
        f"rss={row.maxrss_mib:.0f}MiB cpu={row.cpu_s:.2f}s status={row.status} "
        f"completed={s.get('completed', '?')} failed={s.get('failed', '?')} {phases}")

    if not args.keep:
        for d in (state, out):
            shutil.rmtree(d, ignore_errors=True)
    return row


# --------------------------------------------------------------------------
# report

COLUMNS = ["label", "evaluator", "N", "wall s", "docs/s", "processing items/s", "finalize s",
           "peak RSS MB", "CPU µs/doc", "state MB", "out MB", "status", "failed docs"]


def _f(value, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def row_cells(row: Row) -> list[str]:
    s = row.summary
    status = row.status or "(no results.json)"
    if row.returncode != 0:
        status += f" (exit {row.returncode})"
    return [row.label, row.evaluator, str(row.n), f"{row.wall_s:.2f}", f"{row.docs_per_s:.0f}",
            _f(s.get("items_per_s"), ".0f"), _f(s.get("finalize_s"), ".2f"),
            _f(row.maxrss_mib, ".0f"), _f(row.cpu_us_per_doc, ".0f"),
            f"{row.state_mib:.1f}", f"{row.out_mib:.1f}", status, _f(s.get("failed"), "d")]


def table(args, rows: list[Row]) -> str:
    right = {"N", "wall s", "docs/s", "processing items/s", "finalize s", "peak RSS MB",
             "CPU µs/doc", "state MB", "out MB", "failed docs"}
    when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        f"### docket run scale — {args.label or '(no label)'} — {when}",
        "",
        f"`{shlex.join([sys.executable] + sys.argv)}`  ",
        f"docket: `{args.docket}`; {os.cpu_count()} cores, {platform.platform()}; "
        f"~{DOC_BYTES // 1024} KiB documents; MB = 2^20 bytes; state/out are disk use (du)",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---:" if c in right else "---" for c in COLUMNS) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(row_cells(row)) + " |")
    if not rows:
        lines.append("| " + " | ".join([""] * len(COLUMNS)) + " |")
    return "\n".join(lines) + "\n"


def parse_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def parse_size(text: str) -> int:
    t = text.strip().lower().replace("_", "")
    mult = 1
    if t.endswith("k"):
        t, mult = t[:-1], 1000
    elif t.endswith("m"):
        t, mult = t[:-1], 1000_000
    n = int(float(t) * mult)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive: {text}")
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docket", required=True, type=Path, help="the docket binary to measure")
    ap.add_argument("--sizes", default="10000,100000,500000",
                    help="comma-separated batch sizes (10000, 10k, 0.5m) [%(default)s]")
    ap.add_argument("--evaluators", default="wordstats,decalogo", help="comma-separated [%(default)s]")
    ap.add_argument("--work", required=True, type=Path, help="corpora, state, out, logs, scale-results.md")
    ap.add_argument("--label", default="", help="printed in the table header and label column")
    ap.add_argument("--keep", action="store_true", help="keep the state and out directories")
    ap.add_argument("--seed", type=int, default=1, help="corpus seed [%(default)s]")
    ap.add_argument("--no-time", action="store_true",
                    help="do not use /usr/bin/time -v (measure with the child's rusage)")
    args = ap.parse_args(argv)

    docket = args.docket.expanduser()
    if not (docket.is_file() and os.access(docket, os.X_OK)):
        ap.error(f"not an executable: {docket}")
    args.docket = docket.resolve()
    try:
        sizes = [parse_size(s) for s in parse_list(args.sizes)]
    except (ValueError, argparse.ArgumentTypeError) as e:
        ap.error(f"--sizes: {e}")
    evaluators = parse_list(args.evaluators)
    if not sizes or not evaluators:
        ap.error("need at least one size and one evaluator")
    args.work = args.work.expanduser().resolve()
    args.work.mkdir(parents=True, exist_ok=True)

    text_cache: dict = {}
    corpora = {n: ensure_corpus(args.work, n, args.seed, text_cache) for n in sizes}
    text_cache.clear()

    rows: list[Row] = []
    failed = 0
    try:
        for evaluator in evaluators:
            for n in sizes:
                row = run_one(args, args.label, evaluator, n, corpora[n])
                rows.append(row)
                if row.returncode != 0:
                    failed = row.returncode if row.returncode > 0 else 1
                    break
            if failed:
                break
    except KeyboardInterrupt:
        log("interrupted")
        failed = 130
    finally:
        report = table(args, rows)
        print(report, end="")
        with open(args.work / "scale-results.md", "a", encoding="utf-8") as f:
            f.write(report + "\n")
        log(f"appended to {args.work / 'scale-results.md'}")
    return failed


if __name__ == "__main__":
    sys.exit(main())
