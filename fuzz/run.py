"""Run missile's fuzz targets under atheris (libFuzzer).

    python fuzz/run.py [--seconds N | --runs N] [--jobs N] [--together] [target ...] [-- libFuzzer flags]

Each target runs in its own process (libFuzzer ends the process when it is done),
seeded with inputs extracted from ``tests/vectors`` (written to a temporary corpus
directory, or to ``--corpus DIR/<target>`` to keep what the run discovers) and a
dictionary of MSL keywords. ``--together`` instead fuzzes the selected targets in
``--jobs`` processes, several targets each (the first input byte picks the target):
one start-up per process, which is what CI uses.

A crash, timeout or out-of-memory input is saved under ``--artifacts`` (default
``fuzz/artifacts``) as ``<target>-crash-<sha1>`` and so on (``together-...`` for a
``--together`` input whose first byte names the target); ``--reproduce FILE...``
replays saved inputs outside libFuzzer, with a traceback.

Target names accept shell patterns (``'keyx_*'``); no name means every target; ``--list``
lists them. The exit status is 0 only when every target ran clean.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
REPO = FUZZ_DIR.parent
sys.path.insert(0, str(REPO / "src"))
if str(FUZZ_DIR) not in sys.path:
    sys.path.insert(0, str(FUZZ_DIR))

#: libFuzzer limits applied to every run (issue #8: no hang, no memory blow-up).
RSS_LIMIT_MB = 2048
TIMEOUT_S = 10

TOGETHER = "together"
"""Pseudo-target of ``--together`` runs: byte 0 picks the target (index in TARGETS)."""

_STATS_ENV = "MISSILE_FUZZ_STATS"
_ARTIFACTS_ENV = "MISSILE_FUZZ_ARTIFACTS"
_STATS_INTERVAL_S = 0.05


# -- worker: targets inside atheris ---------------------------------------------------------


def _seed_inputs(names: Sequence[str], together: bool) -> list[bytes]:
    """The seeds of one target, or of several together (each prefixed with its target's index)."""
    import targets

    if not together:
        (name,) = names
        return targets.seeds(name)
    everything = list(targets.TARGETS)
    out: list[bytes] = []
    for name in names:
        index = everything.index(name)
        out.extend(bytes([index]) + seed for seed in targets.seeds(name))
    return out


_DICT_WORDS = (
    # Structure and values a mutator is unlikely to invent.
    "{",
    "}",
    "[",
    "]",
    '":"',
    '":',
    ",",
    "true",
    "false",
    "null",
    "-1",
    "0",
    "9007199254740992",
    "9007199254740991",
    "9223372036854775807",
    "1e3",
    "-0",
    '\\"',
    "\\u0000",
    "\\ud800",
    "==",
    "=",
    "GZIP",
    "LZW",
    "JSON",
    "RSA",
    "JWE_RSA",
    "JWEJS_RSA",
    "JWK_RSA",
    "JWK_RSAES",
    "PSK",
    "SESSION",
    "WRAP",
    "MGK",
    "AES",
    "HmacSHA256",
    "AESCmac",
    "\x1f\x8b\x08",
)


def _write_dict(path: Path) -> None:
    """A libFuzzer dictionary: MSL keywords plus every JSON key and short value of the vectors."""
    import targets

    words: set[str] = set(_DICT_WORDS)
    words.update(targets.KEYX_SCHEMES)
    words.update(["NONE", "NONE_SUFFIXED", "X509", "ECC", "MT_PROTECTED", "PROVISIONED", "PSK_PROFILE"])
    words.update(["EMAIL_PASSWORD", "USER_ID_TOKEN"])

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                words.add(str(key))
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and len(value) <= 24:
            words.add(value)

    for vector in sorted(targets.VECTOR_DIR.glob("[0-9][0-9]_*.json")):
        data = json.loads(vector.read_text(encoding="utf-8"))
        walk(data.get("expected"))
        walk(data.get("keys", {}).get("entity_auth"))
    lines = []
    for word in sorted(words):
        if not word or len(word) > 64:
            continue
        escaped = "".join(
            ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\' else "".join(f"\\x{b:02x}" for b in ch.encode())
            for ch in word
        )
        lines.append(f'"{escaped}"')
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def together_target(stats: Path | None = None, artifacts: Path | None = None) -> Callable[[bytes], None]:
    """The ``--together`` dispatcher: byte 0 picks the target, the rest is its input.

    A target's input is cut to its own ``max_len``. The dispatcher counts executions
    per target into ``stats`` (JSON, rewritten every 50 ms, as libFuzzer ends the
    process without notice), and saves an input a target fails on under ``artifacts``
    as ``<target>-crash-<sha1>``, reproducible with that target alone.
    """
    import targets

    everything = list(targets.TARGETS.values())
    limits = {t.name: targets.max_len(t.name) for t in everything}
    counts: dict[str, int] = {}
    last = [0.0]

    def flush() -> None:
        if stats is not None:
            tmp = stats.with_suffix(".tmp")
            tmp.write_text(json.dumps(counts), encoding="utf-8")
            tmp.replace(stats)
        last[0] = time.monotonic()

    def run(data: bytes) -> None:
        if not data:
            return
        target = everything[data[0] % len(everything)]
        counts[target.name] = counts.get(target.name, 0) + 1
        if time.monotonic() - last[0] > _STATS_INTERVAL_S:
            flush()
        body = data[1 : 1 + limits[target.name]]
        try:
            target.run(body)
        except Exception:
            flush()
            if artifacts is not None:
                (artifacts / f"{target.name}-crash-{hashlib.sha1(body).hexdigest()}").write_bytes(body)
            raise

    return run


def worker(names: list[str], together: bool, corpus: Path, dict_path: Path | None, libfuzzer_args: list[str]) -> None:
    """Fuzz one target, or ``names`` together, in this process; libFuzzer ends it."""
    import atheris  # type: ignore[import-untyped]

    # Comparison feedback for str methods (startswith, ==); atheris's RegEx hook
    # cannot handle the bytes patterns missile compiles, so it stays off.
    atheris.enabled_hooks.add("str")
    with atheris.instrument_imports(include=["missile"]):
        import targets
    targets.cache_private_key_loading()
    if not together:
        fn = targets.TARGETS[names[0]].run
    else:
        stats = os.environ.get(_STATS_ENV)
        artifacts = os.environ.get(_ARTIFACTS_ENV)
        fn = together_target(Path(stats) if stats else None, Path(artifacts) if artifacts else None)
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in _seed_inputs(names, together):
        (corpus / f"seed-{hashlib.sha1(seed).hexdigest()}").write_bytes(seed)
    args = [sys.argv[0], *libfuzzer_args]
    if not any(a.startswith("-max_len=") for a in args):
        args.append(f"-max_len={int(together) + max(targets.max_len(n) for n in names)}")
    if dict_path is not None:
        _write_dict(dict_path)
        args.append(f"-dict={dict_path}")
    args.append(str(corpus))
    atheris.Setup(args, fn)
    atheris.Fuzz()


# -- parent: orchestrate the workers -------------------------------------------------------


@dataclass
class Result:
    """One worker process: a target, or a group of targets fuzzed together."""

    label: str
    names: list[str]
    returncode: int
    runs: int | None
    seconds: float
    coverage: str
    artifacts: list[Path]
    log_tail: str
    per_target: dict[str, int] = field(default_factory=dict)
    slowest_s: int | None = None
    peak_rss_mb: int | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.artifacts

    @property
    def together(self) -> bool:
        return self.label.startswith(TOGETHER)


_RUNS = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_DONE = re.compile(r"Done (\d+) runs in")
_COV = re.compile(r"#\d+\s+\w+\s+cov: (\d+) ft: (\d+)")
_SLOWEST = re.compile(r"stat::slowest_unit_time_sec:\s*(\d+)")
_RSS = re.compile(r"stat::peak_rss_mb:\s*(\d+)")


def _run_worker(label: str, names: list[str], opts: argparse.Namespace, artifacts: Path) -> Result:
    together = label.startswith(TOGETHER)
    work = Path(tempfile.mkdtemp(prefix=f"missile-fuzz-{label}-"))
    corpus = work / "corpus" if opts.corpus is None else Path(opts.corpus) / label
    flags = [
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-malloc_limit_mb={RSS_LIMIT_MB}",
        f"-timeout={TIMEOUT_S}",
        f"-artifact_prefix={artifacts}/{TOGETHER if together else label}-",
        "-print_final_stats=1",
        "-use_value_profile=1",
    ]
    if opts.runs is not None:
        flags.append(f"-runs={opts.runs}")
    if opts.seconds is not None:
        flags.append(f"-max_total_time={opts.seconds}")
    if opts.max_len is not None:
        flags.append(f"-max_len={opts.max_len}")
    if opts.seed is not None:
        flags.append(f"-seed={opts.seed}")
    flags.extend(opts.libfuzzer)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", ",".join(names), "--corpus", str(corpus)]
    if together:
        cmd.append("--together")
    if not opts.no_dict:
        cmd += ["--dict", str(work / "msl.dict")]
    cmd += ["--", *flags]
    stats = work / "stats.json"
    env = dict(os.environ, **{_STATS_ENV: str(stats), _ARTIFACTS_ENV: str(artifacts)})
    log = work / "log.txt"
    prefixes = [f"{n}-" for n in names] + ([f"{TOGETHER}-"] if together else [])
    before = {p for p in artifacts.iterdir() if p.name.startswith(tuple(prefixes))}
    start = time.monotonic()
    try:
        with log.open("wb") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=work, env=env, check=False)
        text = log.read_text(encoding="utf-8", errors="replace")
        elapsed = time.monotonic() - start
        now = {p for p in artifacts.iterdir() if p.name.startswith(tuple(prefixes))}
        found = sorted(p for p in now - before if p.suffix != ".log")
        runs_m = _RUNS.findall(text) or _DONE.findall(text)
        cov = _COV.findall(text)
        per_target: dict[str, int] = json.loads(stats.read_text(encoding="utf-8")) if stats.exists() else {}
        result = Result(
            label,
            names,
            proc.returncode,
            int(runs_m[-1]) if runs_m else None,
            elapsed,
            f"cov {cov[-1][0]} ft {cov[-1][1]}" if cov else "",
            found,
            "\n".join(text.splitlines()[-60:]),
            per_target,
            int(_SLOWEST.findall(text)[-1]) if _SLOWEST.findall(text) else None,
            int(_RSS.findall(text)[-1]) if _RSS.findall(text) else None,
        )
        if not result.ok:
            shutil.copyfile(log, artifacts / f"{label}.log")
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _select(patterns: Sequence[str], names: Sequence[str]) -> list[str]:
    if not patterns:
        return list(names)
    picked: list[str] = []
    for pattern in patterns:
        matches = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not matches:
            raise SystemExit(f"no target matches {pattern!r}; try --list")
        picked.extend(m for m in matches if m not in picked)
    return picked


def reproduce(name: str, paths: Sequence[str]) -> int:
    """Replay saved inputs through target ``name`` (or ``together``); 1 if any fails."""
    import targets

    run = together_target() if name == TOGETHER else targets.TARGETS[name].run
    failed = 0
    for path in paths:
        data = Path(path).read_bytes()
        try:
            run(data)
        except Exception:
            failed += 1
            print(f"{path}: FAILS", file=sys.stderr)
            traceback.print_exc()
        else:
            print(f"{path}: ok")
    return 1 if failed else 0


def _report(result: Result, artifacts: Path) -> None:
    rate = f"{result.runs / result.seconds:.0f}/s" if result.runs and result.seconds else "?"
    status = "ok" if result.ok else f"FAILED (exit {result.returncode})"
    limits = f"slowest input {result.slowest_s} s, peak RSS {result.peak_rss_mb} MB"
    runs = f"{result.runs} runs in {result.seconds:.1f} s ({rate})"
    print(f"{result.label}: {status}, {runs} {result.coverage}, {limits}")
    if result.together:
        for name in result.names:
            print(f"  {name}: {result.per_target.get(name, 0)} runs")
    if not result.ok:
        for path in result.artifacts:
            print(f"  finding: {path}")
        print(f"  log: {artifacts / (result.label + '.log')}")
        print("  " + result.log_tail.replace("\n", "\n  "))
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    libfuzzer: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, libfuzzer = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help="target names or shell patterns (default: all)")
    parser.add_argument("--seconds", type=int, help="libFuzzer -max_total_time per process (default 60)")
    parser.add_argument("--runs", type=int, help="libFuzzer -runs per process (seed runs included)")
    parser.add_argument("--max-len", type=int, help="libFuzzer -max_len (default: 2x the largest seed, >= 4096)")
    parser.add_argument("--seed", type=int, help="libFuzzer -seed (random seed), for a repeatable run")
    parser.add_argument("--jobs", type=int, default=1, help="processes at the same time (default 1)")
    parser.add_argument("--together", action="store_true", help="fuzz the targets in --jobs shared processes")
    parser.add_argument("--corpus", help="keep each target's corpus in CORPUS/<target> (default: a temp dir)")
    parser.add_argument("--artifacts", default=str(FUZZ_DIR / "artifacts"), help="where findings are saved")
    parser.add_argument("--no-dict", action="store_true", help="no libFuzzer dictionary")
    parser.add_argument("--json", help="also write the per-target results to this file, as JSON")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument("--reproduce", nargs="+", metavar="FILE", help="replay saved inputs through ONE target")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--dict", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    opts.libfuzzer = libfuzzer

    if opts.worker:
        dict_path = Path(opts.dict) if opts.dict else None
        worker(opts.worker.split(","), opts.together, Path(opts.corpus), dict_path, libfuzzer)
        return 0  # pragma: no cover - libFuzzer exits the process

    import targets

    names = list(targets.TARGETS)
    if opts.list:
        width = max(map(len, names))
        for name in names:
            print(f"{name:<{width}}  {targets.TARGETS[name].description}")
        return 0
    if opts.reproduce:
        if len(opts.targets) != 1 or (opts.targets[0] != TOGETHER and opts.targets[0] not in names):
            raise SystemExit(f"--reproduce takes exactly one target name (or {TOGETHER!r})")
        return reproduce(opts.targets[0], opts.reproduce)
    selected = _select(opts.targets, names)
    if opts.seconds is None and opts.runs is None:
        opts.seconds = 60
    artifacts = Path(opts.artifacts).resolve()
    artifacts.mkdir(parents=True, exist_ok=True)

    jobs = max(1, opts.jobs)
    if opts.together:
        groups = [selected[i::jobs] for i in range(min(jobs, len(selected)))]
        work = [(f"{TOGETHER}{i + 1}", group) for i, group in enumerate(groups)]
    else:
        work = [(name, [name]) for name in selected]

    summary: dict[str, dict[str, object]] = {}
    failed = 0
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for result in pool.map(lambda item: _run_worker(item[0], item[1], opts, artifacts), work):
            _report(result, artifacts)
            failed += 0 if result.ok else 1
            for name in result.names:
                own = [p for p in result.artifacts if p.name.startswith(f"{name}-")]
                summary[name] = {
                    "ok": result.ok and not own,
                    "process": result.label,
                    "returncode": result.returncode,
                    "runs": result.per_target.get(name, 0) if result.together else result.runs,
                    "seconds": round(result.seconds, 2),
                    "slowest_input_s": result.slowest_s,
                    "peak_rss_mb": result.peak_rss_mb,
                    "artifacts": [str(p) for p in (own if result.together else result.artifacts)],
                    "log_tail": "" if result.ok else result.log_tail,
                }
    clean = sum(1 for item in summary.values() if item["ok"])
    print(f"{clean}/{len(selected)} targets clean")
    if opts.json:
        Path(opts.json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
