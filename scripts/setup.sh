#!/usr/bin/env bash
# Install everything missile needs on a fresh machine: Debian's redis-server (for the
# shared-state tests), Java 17 and BouncyCastle (for the live tests against the Java
# reference, tests/interop/test_java_live.py) and a virtual environment .venv with
# missile and its test and docs extras. apt runs only when one of the packages is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

MISSING=()
command -v redis-server >/dev/null 2>&1 || MISSING+=(redis-server)
command -v java >/dev/null 2>&1 || MISSING+=(openjdk-17-jre-headless)
[ -f "${BCPROV_JAR:-/usr/share/java/bcprov.jar}" ] || MISSING+=(libbcprov-java)
if [ "${#MISSING[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${MISSING[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# The versions CI tested together (scripts/constraints.txt); pyproject.toml keeps the ranges.
.venv/bin/python -m pip install --quiet -c scripts/constraints.txt -e '.[test,docs]'
