#!/usr/bin/env python3
"""Load figures of `docket serve` on loopback, measured with wrk.

Starts `docket serve --workers 0` (the API alone, as the upload function
runs on AWS: processors elsewhere) on a fresh state directory, stores 1,000
jobs through the upload route, then runs wrk against

  1. GET /api/v1/batch/status/{job_id}, rotating over the 1,000 jobs;
  2. POST /api/v1/batch/upload of a 50-document batch (the sample plans,
     cycled), rotating over keys of 300 premium tenants so the per-key
     buckets and per-tenant concurrency stay out of the way (the quotas
     themselves still run on every upload);
  3. POST /api/v1/batch/upload as multipart/form-data: 50 PDF files (one
     to three pages of plan text each), as `curl -F file=@…` sends them —
     each file streamed to the blob store and enqueued as one referenced
     document (its text is extracted by processors, not run here);

and prints requests/s and latency percentiles. Every request goes to
127.0.0.1 only; each wrk run is bounded in time.

    benches/load.py [--duration 10] [--connections 16]

Needs `wrk` (Debian's package) and a release build of docket.
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/docket/target"))
DOCKET = os.environ.get("DOCKET_BIN", str(TARGET / "release" / "docket"))


def keys(state: pathlib.Path, tenants: int) -> list[str]:
    tokens = []
    for n in range(tenants):
        out = subprocess.run(
            [DOCKET, "keys", "create", "--tenant", f"load-{n}", "--tier", "premium", "--state", str(state)],
            check=True, capture_output=True, text=True,
        ).stdout.split()
        tokens.append(out[0])
    return tokens


def upload(url: str, token: str, body: bytes) -> str:
    request = urllib.request.Request(
        url + "/api/v1/batch/upload", data=body, method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["job_id"]


def text_pdf(pages: list[str]) -> bytes:
    """A PDF with one page of Helvetica text per entry of `pages`."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for page in pages:
        lines = [line.replace("\\", "").replace("(", "").replace(")", "") for line in page.splitlines()[:40]]
        ops = "BT /F1 10 Tf 50 780 Td 12 TL " + " ".join(f"({line.encode('latin-1', 'replace').decode('latin-1')}) '" for line in lines) + " ET"
        objects.append(f"<< /Length {len(ops.encode('latin-1'))} >>\nstream\n{ops}\nendstream")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {len(objects)} 0 R >>")
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def multipart(files: list[tuple[str, bytes]], boundary: str) -> bytes:
    body = bytearray()
    for name, data in files:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                 "Content-Type: application/pdf\r\n\r\n").encode()
        body += data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return bytes(body)


def lua_bytes(data: bytes) -> str:
    """`data` as a Lua string literal (decimal escapes: binary-safe)."""
    return '"' + "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:03d}" for b in data) + '"'


def lua_table(values: list[str]) -> str:
    return "{" + ",".join(json.dumps(v) for v in values) + "}"


def wrk(url: str, script: str, duration: int, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        path = f.name
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{duration}s", "--latency", "-s", path, url],
        check=True, capture_output=True, text=True, timeout=duration + 60,
    ).stdout
    os.unlink(path)
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct in ("50", "90", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", out).groups()
        figures[f"p{pct}"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    statuses = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non2xx"] = int(statuses.group(1)) if statuses else 0
    figures["requests"] = int(re.search(r"(\d+) requests in", out).group(1))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    work = pathlib.Path(tempfile.mkdtemp(prefix="docket-load-"))
    state = work / "state"
    tokens = keys(state, 310)
    server = subprocess.Popen(
        [DOCKET, "serve", "--addr", "127.0.0.1:0", "--state", str(state), "--workers", "0",
         "--max-queue-depth", "100000000"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "DOCKET_LOG": "warn"}, text=True,
    )
    try:
        url = server.stdout.readline().split()[-1]
        plans = sorted((ROOT / "examples" / "plans").glob("*.txt")) + sorted((ROOT / "examples" / "plans").glob("*.md"))
        texts = [p.read_text() for p in plans]
        batch = {"documents": [{"id": f"doc-{n}", "content": texts[n % len(texts)]} for n in range(50)]}
        body = json.dumps(batch).encode()
        small = json.dumps({"documents": [{"id": "a", "content": texts[0]}]}).encode()
        jobs = []
        for n in range(1000):
            token = tokens[n % 10]
            jobs.append((upload(url, token, small), token))
        status_script = f"""
local jobs = {lua_table([j for j, _ in jobs])}
local tokens = {lua_table([t for _, t in jobs])}
local n = 0
request = function()
  n = n + 1
  local i = (n % #jobs) + 1
  return wrk.format("GET", "/api/v1/batch/status/" .. jobs[i], {{["Authorization"] = "Bearer " .. tokens[i]}})
end
"""
        status = wrk(url, status_script, args.duration, args.connections)
        upload_script = f"""
local tokens = {lua_table(tokens[10:])}
local body = {json.dumps(body.decode())}
local n = 0
request = function()
  n = n + 1
  local token = tokens[(n % #tokens) + 1]
  return wrk.format("POST", "/api/v1/batch/upload", {{["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}}, body)
end
"""
        uploads = wrk(url, upload_script, args.duration, min(args.connections, 8))
        lines = [line for text in texts for line in text.splitlines() if line.strip()]
        pdfs = [
            (f"plan-{n:02}.pdf", text_pdf(["\n".join(lines[(n * 7 + p * 40) % len(lines):][:40]) for p in range(n % 3 + 1)]))
            for n in range(50)
        ]
        boundary = "docket-load-7MA4YWxkTrZu0gW"
        form = multipart(pdfs, boundary)
        files_script = f"""
local tokens = {lua_table(tokens[10:])}
local body = {lua_bytes(form)}
local n = 0
request = function()
  n = n + 1
  local token = tokens[(n % #tokens) + 1]
  return wrk.format("POST", "/api/v1/batch/upload", {{["Authorization"] = "Bearer " .. token, ["Content-Type"] = "multipart/form-data; boundary={boundary}"}}, body)
end
"""
        files = wrk(url, files_script, args.duration, min(args.connections, 8))
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    print(f"docket serve on loopback, {os.cpu_count()} cores, wrk -t2, {args.duration} s per route")
    print(f"{'route':<46} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, conns, f in [
        ("GET status (1,000 jobs stored)", args.connections, status),
        ("POST upload (50 documents, %d KB)" % (len(body) // 1024), min(args.connections, 8), uploads),
        ("POST multipart (50 PDF files, %d KB)" % (len(form) // 1024), min(args.connections, 8), files),
    ]:
        print(f"{name:<46} {conns:>5} {f['rps']:>9.0f} {f['p50']:>8.2f} {f['p90']:>8.2f} {f['p99']:>8.2f} {f['non2xx']:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
