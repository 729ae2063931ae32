"""README.md stays true: its Python example runs as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_python_example_runs(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("```python\n") + len("```python\n")
    example = text[start : text.index("```", start)]
    script = tmp_path / "example.py"
    script.write_text(example, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-W", "ignore", str(script)],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert b"echo: hello" in out.stdout
    assert b"UserIdToken(" in out.stdout
