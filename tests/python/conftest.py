"""A real `docket serve` on a loopback port for the independent checks.

The server runs the embedded backend in a temporary state directory with
processors in process; webhooks may reach loopback only for these tests.
"""

import json
import os
import pathlib
import subprocess
import time
import urllib.error
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def docket_bin() -> str:
    if os.environ.get("DOCKET_BIN"):
        return os.environ["DOCKET_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return str(pathlib.Path(target) / "release" / "docket")


class Server:
    def __init__(self, url: str, state: pathlib.Path):
        self.url = url
        self.state = state

    def key(self, tenant: str, tier: str = "premium") -> tuple[str, str]:
        """A new API key of `tenant` and the tenant's webhook secret."""
        created = subprocess.run(
            [docket_bin(), "keys", "create", "--tenant", tenant, "--tier", tier, "--state", str(self.state)],
            check=True,
            capture_output=True,
            text=True,
        )
        token, secret = created.stdout.split()
        return token, secret

    def call(self, method: str, path: str, token: str | None = None, body=None):
        """(status, headers, parsed JSON or text)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, headers, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, headers, raw = error.code, error.headers, error.read()
        text = raw.decode()
        try:
            return status, headers, json.loads(text)
        except ValueError:
            return status, headers, text

    def wait_finished(self, token: str, job_id: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, _, report = self.call("GET", f"/api/v1/batch/status/{job_id}", token)
            if report.get("finalized"):
                return report
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} not finished after {timeout} s")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    process = subprocess.Popen(
        [
            docket_bin(), "serve",
            "--addr", "127.0.0.1:0",
            "--state", str(state),
            "--workers", "2",
            "--webhook-allow", "loopback",
            "--webhook-backoff-ms", "200",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("listening on "), f"docket serve printed {line!r}"
        yield Server(line.split()[-1], state)
    finally:
        process.terminate()
        process.wait(timeout=10)
