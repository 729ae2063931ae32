"""Test sessions on every CPython 3.11+ of the machine: ``nox -s tests`` (each version
found), ``nox -s tests-3.12`` (one), ``nox -s docs``, ``nox -s lint``.

CI (``.ci/run``) runs the suite on the project's own virtual environment only; these
sessions are for checking the other interpreters before a release. A version that is
not installed is skipped, not failed.
"""

from __future__ import annotations

import nox

nox.options.error_on_missing_interpreters = False
nox.options.sessions = ["tests", "lint", "docs"]

PYTHONS = ["3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite (arguments after ``--`` go to pytest)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """ruff and mypy --strict."""
    session.install("-e", ".[test]")
    session.run("ruff", "check", "src", "tests", "benchmarks", "fuzz")
    session.run("mypy")


@nox.session(python=PYTHONS[0])
def docs(session: nox.Session) -> None:
    """The documentation site, built strictly."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")
