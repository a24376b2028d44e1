"""The deploy template passes cfn-lint (with the SAM transform), and the
template `infra/build` writes for its packages deploys them."""

import json
import pathlib
import subprocess
import sys

TEMPLATE = pathlib.Path(__file__).resolve().parents[2] / "infra" / "template.json"


def test_the_deploy_template_passes_cfn_lint():
    linted = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "cfn-lint"), str(TEMPLATE)],
        capture_output=True,
        text=True,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


PACKAGE_TEMPLATE = TEMPLATE.parent / "package-template"
FUNCTIONS = ["upload", "ingest", "processor", "finalizer", "webhook"]


def package_template(packages, out):
    return subprocess.run(
        [sys.executable, str(PACKAGE_TEMPLATE), str(TEMPLATE), str(packages), str(out)],
        capture_output=True,
        text=True,
    )


def test_the_packaged_template_deploys_the_zips_infra_build_made(tmp_path):
    for function in FUNCTIONS:
        (tmp_path / f"{function}.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    out = tmp_path / "template.json"
    written = package_template(tmp_path, out)
    assert written.returncode == 0, written.stderr
    resources = json.loads(out.read_text())["Resources"]
    functions = {
        name: r for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"
    }
    code = sorted(pathlib.Path(r["Properties"]["CodeUri"]).name for r in functions.values())
    assert code == sorted(f"{f}.zip" for f in FUNCTIONS)
    assert all("Metadata" not in r for r in functions.values())
    assert all(pathlib.Path(r["Properties"]["CodeUri"]).is_absolute() for r in functions.values())
    # Everything else is the template's.
    original = json.loads(TEMPLATE.read_text())["Resources"]
    assert set(resources) == set(original)
    assert {n: r for n, r in resources.items() if n not in functions} == {
        n: r for n, r in original.items() if n not in functions
    }
    linted = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "cfn-lint"), str(out)],
        capture_output=True,
        text=True,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_a_missing_package_is_named_and_nothing_is_written(tmp_path):
    for function in FUNCTIONS[:-1]:
        (tmp_path / f"{function}.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    out = tmp_path / "template.json"
    written = package_template(tmp_path, out)
    assert written.returncode == 1
    assert "no package for WebhookFunction" in written.stderr, written.stderr
    assert "run infra/build first" in written.stderr
    assert not out.exists()
