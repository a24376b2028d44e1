"""The deploy template passes cfn-lint (with the SAM transform)."""

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
