#!/usr/bin/env bash
# One command: install everything, then run the main demo (server + client over HTTP).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/python -m missile.demo
