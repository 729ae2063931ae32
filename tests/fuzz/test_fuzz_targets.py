"""Every atheris fuzz target runs briefly and cleanly (issue #8).

One ``fuzz/run.py --together`` call fuzzes all targets in two processes (one start-up
each, the first input byte picking the target) for ``SECONDS`` under libFuzzer's limits
(total time, 2 GiB RSS, 10 s per input); every target then gets its own result: it ran
(at least its seeds), and nothing crashed, hung or blew up. About 20-30 s on two cores.
Long runs are documented in fuzz/README.md.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "fuzz" / "run.py"
sys.path.insert(0, str(REPO / "fuzz"))

import targets  # noqa: E402

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed (pip install -e '.[test]'; wheels exist for CPython on Linux x86_64)",
)

SECONDS = 10
JOBS = 2


@pytest.fixture(scope="module")
def fuzz_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("fuzz")
    summary = work / "summary.json"
    artifacts = work / "artifacts"
    cmd = [sys.executable, str(RUN), "--together", "--jobs", str(JOBS), "--seconds", str(SECONDS)]
    cmd += ["--artifacts", str(artifacts), "--json", str(summary)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert summary.exists(), proc.stdout + proc.stderr
    return {
        "targets": json.loads(summary.read_text(encoding="utf-8")),
        "artifacts": sorted(p.name for p in artifacts.iterdir()) if artifacts.exists() else [],
        "returncode": proc.returncode,
        "output": proc.stdout + proc.stderr,
    }


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", list(targets.TARGETS))
def test_target_runs_clean(fuzz_results: dict[str, Any], name: str) -> None:
    result = fuzz_results["targets"][name]
    assert result["ok"], f"{name}: exit {result['returncode']}, findings {result['artifacts']}\n{result['log_tail']}"
    assert not result["artifacts"]
    assert result["runs"] >= 1, f"{name} was not executed"


@pytest.mark.timeout(300)
def test_run_is_clean(fuzz_results: dict[str, Any]) -> None:
    assert fuzz_results["returncode"] == 0, fuzz_results["output"]
    assert fuzz_results["artifacts"] == [], fuzz_results["output"]
