"""Independent checks of docket serve: the OpenAPI document under
property-based testing (schemathesis), webhook signatures verified by the
Standard Webhooks reference library, and /metrics read by the Prometheus
client's own parser."""

import http.server
import json
import pathlib
import subprocess
import threading
import time

import pytest
import requests
import schemathesis
from hypothesis import settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks.webhooks import Webhook

PLANS = pathlib.Path(__file__).resolve().parents[2] / "examples" / "plans"


# --- OpenAPI: no 5xx, no response outside the schema -----------------------

schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(scope="session")
def api_schema(server):
    token, _ = server.key("fuzz")
    # A finished job, so the job routes answer with its documents (status,
    # results) and not only 404s.
    status, _, accepted = server.call(
        "POST", "/api/v1/batch/upload", token,
        {"documents": [
            {"id": "plan", "content": (PLANS / "harbor-town-strategy.txt").read_text()},
            {"id": "note", "content": "A short note."},
        ], "options": {"evaluator": "wordstats"}},
    )
    assert status == 202, accepted
    server.wait_finished(token, accepted["job_id"])
    loaded = schemathesis.openapi.from_url(
        server.url + "/api/v1/openapi.json",
        headers={"Authorization": f"Bearer {token}"},
    )
    loaded.config.update(
        base_url=server.url,
        headers={"Authorization": f"Bearer {token}"},
        parameters={"job_id": accepted["job_id"]},
    )
    return loaded


@schema.parametrize()
@settings(max_examples=25, deadline=None)
def test_the_api_keeps_to_its_schema(case):
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("options"), dict):
        # Generated webhook URLs could name any host: callbacks are tested
        # below against a receiver on loopback.
        body["options"].pop("webhook_url", None)
    response = case.call()
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            response_headers_conformance,
        ],
    )


# --- Webhooks ---------------------------------------------------------------


class Receiver(http.server.BaseHTTPRequestHandler):
    """Answers 503 to its first `failures` calls, then verifies and 204s."""

    failures = 2
    calls: list = []
    verified: list = []
    secret = ""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        Receiver.calls.append((headers, body))
        if len(Receiver.calls) <= Receiver.failures:
            self.send_response(503)
            self.end_headers()
            return
        # Raises when the signature, id or timestamp does not verify.
        payload = Webhook(Receiver.secret).verify(body, headers)
        Receiver.verified.append(payload)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhooks_are_signed_retried_and_verified_by_the_reference_library(server):
    token, secret = server.key("hooks")
    Receiver.secret = secret
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        documents = [
            {"id": p.stem, "content": p.read_text()} for p in sorted(PLANS.glob("*.txt"))
        ]
        status, _, accepted = server.call(
            "POST", "/api/v1/batch/upload", token,
            {"documents": documents, "options": {"webhook_url": url, "evaluator": "decalogo"}},
        )
        assert status == 202, accepted
        job_id = accepted["job_id"]
        server.wait_finished(token, job_id)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not Receiver.verified:
            time.sleep(0.05)
        assert len(Receiver.calls) == 3, "two 503s, then delivered"
        ids = {headers["webhook-id"] for headers, _ in Receiver.calls}
        assert ids == {f"msg_{job_id}"}
        event = Receiver.verified[0]
        assert event["type"] == "batch.completed"
        assert event["data"]["job_id"] == job_id
        assert event["data"]["document_count"] == len(documents)
        # A receiver written for the systems docket replaces reads the same
        # fields at the top level of the verified body.
        for field in ["job_id", "status", "document_count", "completed_documents", "failed_documents", "results_url"]:
            assert event[field] == event["data"][field], field
        assert event["job_id"] == job_id
        assert event["status"] == "completed"
        _, _, report = server.call("GET", f"/api/v1/batch/status/{job_id}", token)
        assert report["webhook"]["state"] == "delivered"
        assert report["webhook"]["attempts"] == 3
        # A tampered body does not verify.
        headers, body = Receiver.calls[-1]
        with pytest.raises(Exception):
            Webhook(secret).verify(body + b" ", headers)
    finally:
        receiver.shutdown()


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/hook", "http://[fe80::1]/hook"],
)
def test_webhook_urls_to_special_addresses_are_refused(server, url):
    token, _ = server.key("ssrf")
    status, _, error = server.call(
        "POST", "/api/v1/batch/upload", token,
        {"documents": [{"id": "a", "content": "text"}], "options": {"webhook_url": url}},
    )
    assert status == 422
    assert error["error"]["details"][0]["field"] == "options.webhook_url"


# --- Metrics ----------------------------------------------------------------


def test_metrics_parse_with_the_prometheus_parser(server):
    token, _ = server.key("metrics")
    status, _, accepted = server.call(
        "POST", "/api/v1/batch/upload", token,
        {"documents": [{"id": "a", "content": (PLANS / "harbor-town-strategy.txt").read_text()}]},
    )
    assert status == 202
    server.wait_finished(token, accepted["job_id"])
    status, headers, text = server.call("GET", "/api/v1/metrics", token)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["docket_jobs"].type == "gauge"
    completed = [s for s in families["docket_jobs"].samples if s.labels["status"] == "completed"]
    assert completed and completed[0].value >= 1
    assert families["docket_work_items_processed"].type == "counter"
    assert families["docket_evaluation_seconds"].type == "histogram"
    buckets = [s for s in families["docket_evaluation_seconds"].samples if s.name.endswith("_bucket")]
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value >= 1
    depth = families["docket_queue_depth"].samples
    assert {s.labels["queue"] for s in depth} == {"work-high", "work-normal", "work-low", "finalize", "webhook", "ingest"}
    windows = {s.labels["window"] for s in families["docket_throughput_items_per_second"].samples}
    assert windows == {"1h", "24h"}


def test_files_upload_with_curl_form_fields(server, tmp_path):
    """`curl -F file=@…` as the batch clients send files: the good ones
    complete, a broken PDF fails alone with the reason, and a part that is
    not a file is refused with the documented status."""
    token, _ = server.key("curl")
    plan = PLANS / "harbor-town-strategy.txt"
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7 cut short")
    page = tmp_path / "page.html"
    page.write_text("<!doctype html><html><body><h1>Harbor</h1><p>Budget and goals.</p></body></html>")

    def curl(*form: str) -> tuple[int, dict]:
        done = subprocess.run(
            ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}",
             "-H", f"Authorization: Bearer {token}",
             *[arg for field in form for arg in ("-F", field)],
             server.url + "/api/v1/batch/upload"],
            check=True, capture_output=True, text=True,
        )
        body, _, status = done.stdout.rpartition("\n")
        return int(status), json.loads(body)

    status, accepted = curl(
        'options={"evaluator": "wordstats"};type=application/json',
        f"file=@{plan}",
        'metadata={"region": "south"};type=application/json',
        f"file=@{broken}",
        f"file=@{page}",
    )
    assert status == 202, accepted
    assert accepted["document_count"] == 3
    server.wait_finished(token, accepted["job_id"])
    _, _, results = server.call("GET", f"/api/v1/batch/results/{accepted['job_id']}", token)
    by_id = {d["id"]: d for d in results["documents"]}
    assert by_id["harbor-town-strategy.txt"]["status"] == "completed"
    assert by_id["page.html"]["status"] == "completed"
    assert by_id["page.html"]["data"]["words"] >= 4
    assert by_id["broken.pdf"]["status"] == "failed"
    assert by_id["broken.pdf"]["error"]["category"] == "DATA"
    assert by_id["broken.pdf"]["error"]["message"].startswith("unreadable PDF: ")

    status, refused = curl("attachment=x")
    assert status == 422, refused
    assert [d["field"] for d in refused["error"]["details"]] == ["parts[0]", "file"]


def test_a_client_written_for_the_fastapi_stack_works_unchanged(server, tmp_path):
    """The batch client of the systems docket replaces, with only its base
    URL and token changed: `requests` sends Python's `True`/`False` in the
    query and in form fields, and its health script reads `metrics`."""
    token, _ = server.key("seed-client")
    auth = {"Authorization": f"Bearer {token}"}
    plan = PLANS / "harbor-town-strategy.txt"
    with plan.open("rb") as handle:
        response = requests.post(
            server.url + "/api/v1/batch/upload",
            headers=auth,
            files={"file": (plan.name, handle, "text/plain")},
            data={"evaluator": "decalogo", "priority": "high", "include_evidence": False},
            timeout=30,
        )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    server.wait_finished(token, job_id)

    def findings(**params):
        response = requests.get(
            f"{server.url}/api/v1/batch/results/{job_id}", headers=auth, params=params, timeout=30
        )
        assert response.status_code == 200, response.text
        return response.json()["documents"][0]["findings"]

    # The job's own choice (the form field said False), then the query's.
    assert findings() and all("evidence" not in f for f in findings())
    assert any("evidence" in f for f in findings(include_evidence=True))
    assert all("evidence" not in f for f in findings(include_evidence=False))
    response = requests.get(
        f"{server.url}/api/v1/batch/results/{job_id}", headers=auth,
        params={"include_evidence": "perhaps"}, timeout=30,
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "include_evidence"

    # Health figures are read at most every 10 s: wait for ones that count
    # this job.
    deadline = time.monotonic() + 15
    while True:
        metrics = requests.get(server.url + "/api/v1/health", timeout=30).json()["metrics"]
        if metrics["throughput_docs_per_hour"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert metrics["throughput_docs_per_hour"] >= 1, metrics
    assert set(metrics) >= {"jobs_in_queue", "throughput_docs_per_hour"}
