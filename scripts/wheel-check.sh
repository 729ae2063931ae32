#!/usr/bin/env bash
# Build the sdist and the wheel with `python -m build`, refusing any build warning, then
# install the wheel (with no extras: the lean client install) into a fresh virtual
# environment in a temporary directory and run smoke checks from there, outside the
# checkout, so that nothing is imported from src/ by accident.
#
# Usage: scripts/wheel-check.sh [PYTHON]   (default: .venv/bin/python)
# Other checks that need the installed wheel (e.g. README examples) go in the marked
# section below; they run with $VENV/bin/python in $WORK.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PYTHON="${1:-$ROOT/.venv/bin/python}"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
DIST="$WORK/dist"

# Build; setuptools and the build frontend print "warning" for deprecated metadata and
# similar: any such line fails the check. (PYTHONDONTWRITEBYTECODE, when set, makes
# setuptools warn that it skips byte-compiling: not a packaging problem, so it is unset.)
env -u PYTHONDONTWRITEBYTECODE "$PYTHON" -m build --outdir "$DIST" "$ROOT" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
if grep -i -E "warning|deprecat" "$WORK/build.log"; then
    echo "wheel-check: the build printed warnings (above)" >&2
    exit 1
fi
WHEEL="$(ls "$DIST"/missile-*.whl)"
ls "$DIST"/missile-*.tar.gz >/dev/null
# (zipfile, not `unzip -l | grep -q`: with pipefail, grep leaving early fails the pipe.)
"$PYTHON" - "$WHEEL" <<'PY' || exit 1
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
for wanted, what in (("missile/engine/client.py", "missile.engine"), ("missile/observe/base.py", "missile.observe"),
                     ("LICENSE", "LICENSE")):
    if not any(name.endswith(wanted) for name in names):
        sys.exit(f"wheel-check: wheel lacks {what}")
PY

VENV="$WORK/venv"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet -c "$ROOT/scripts/constraints.txt" "$WHEEL"

cd "$WORK"
# The lean install: a client works without uvicorn, uvloop or redis.
"$VENV/bin/python" - <<'PY'
import importlib.util
import sys

import missile
import missile.cli
import missile.engine.client
import missile.stores
import missile.transport.http
from missile.keyfile import KeyFile

assert not missile.__file__.startswith(sys.argv[0] or "/nonexistent"), missile.__file__
for extra in ("uvicorn", "redis", "uvloop"):
    assert importlib.util.find_spec(extra) is None, f"{extra} installed by the base install"
    assert extra not in sys.modules, f"{extra} imported by the client modules"
print("wheel-check: import missile", missile.__version__, "from", missile.__file__)
PY
"$VENV/bin/missile" --version
"$VENV/bin/missile" keygen "$WORK/keys" >/dev/null
"$VENV/bin/missile" inspect --help >/dev/null

# --- further checks with the installed wheel go here (README examples) ---

echo "wheel-check: ok"
