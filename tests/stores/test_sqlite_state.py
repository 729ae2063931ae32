"""The SQLite token state's single-statement compare-and-set and its worker's batches.

A message's check is one autocommit upsert (a batch of checks of distinct tokens is one
upsert with a row each) that stores a non-replayable ID only if the rule of control.md
§7 accepts it; the rule is then written twice (Python and SQL), so these tests hold the
two to each other on every edge of the rule (one token and many in one statement), hold
the whole state to
:class:`~missile.tokens.state.MemoryTokenState` over long random call sequences (with the
compare-and-set and with the transactional path of an SQLite without ``RETURNING``), and
race real processes on one file through the refusal path.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from missile.encoding import MAX_LONG_VALUE
from missile.errors import MslError, MslException
from missile.stores import sqlite_state
from missile.stores.sqlite_state import MAX_BATCH, SqliteTokenState
from missile.tokens.state import (
    NON_REPLAYABLE_CATCHUP,
    NON_REPLAYABLE_WINDOW,
    MemoryTokenState,
    TokenState,
    check_non_replayable_id,
)
from process_helpers import results_of

W = NON_REPLAYABLE_WINDOW
C = NON_REPLAYABLE_CATCHUP
#: Processes racing on one file: enough to race on a 2-core machine, few enough to start fast.
PROCESSES = 4
#: Rounds of the process race: in each, every process tries the same next ID at once.
RACE_IDS = 30
#: Calls in one random sequence compared with the in-memory state.
SEQUENCE_CALLS = 400


@pytest.fixture(params=[True, False], ids=["compare-and-set", "transactions-only"])
def compare_and_set(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    """Both paths: the single-statement one, and the one of an SQLite without RETURNING."""
    monkeypatch.setattr(sqlite_state, "COMPARE_AND_SET", request.param)
    yield request.param


def _edges() -> list[int]:
    points = {0, 1, C - 1, C, C + 1, W - 1, W, W + 1, 2 * W, MAX_LONG_VALUE - W, MAX_LONG_VALUE - 1, MAX_LONG_VALUE}
    points |= {MAX_LONG_VALUE - W - 1, MAX_LONG_VALUE - W + 1, MAX_LONG_VALUE - C, MAX_LONG_VALUE // 2}
    return sorted(points)


def _candidates(largest: int) -> set[int]:
    near = {largest + d for d in (-W - 1, -W, -W + 1, -C - 1, -C, -C + 1, -1, 0, 1, W - 1, W, W + 1)}
    far = {largest - MAX_LONG_VALUE + W + d for d in (-1, 0, 1)}
    return {c for c in near | far | set(_edges()) if 0 <= c <= MAX_LONG_VALUE}


def test_sql_rule_is_the_reference_rule_on_every_edge(tmp_path: Path) -> None:
    """The upsert stores a candidate exactly when check_non_replayable_id accepts it, and
    leaves the stored largest alone otherwise, around every boundary of the rule
    (catch-up window, forward window, wrap-around near 2^53)."""
    state = SqliteTokenState(tmp_path / "state.db")
    try:
        cases = 0
        conn = state._db._connection()  # autocommit mode, as the worker's single statements
        for largest in _edges():
            for candidate in sorted(_candidates(largest)):
                conn.execute("DELETE FROM non_replayable")
                if largest:
                    conn.execute(sqlite_state._STORE_LARGEST_SQL, ("device", 1, largest))
                for sql, params in (
                    (sqlite_state._ACCEPT_SQL, ("device", 1, candidate)),
                    (sqlite_state._check_sql(1), ("device", 1, candidate)),
                ):
                    stored = conn.execute(sql, params).fetchone() is not None
                    assert not conn.in_transaction  # the autocommit statement completed
                    accepted = check_non_replayable_id(largest, candidate) is None
                    assert stored is accepted, (largest, candidate)
                    row = conn.execute("SELECT largest FROM non_replayable").fetchone()
                    assert (row[0] if row else 0) == (candidate if accepted else largest)
                    if accepted and largest:
                        conn.execute(sqlite_state._STORE_LARGEST_SQL, ("device", 1, largest))
                    elif accepted:
                        conn.execute("DELETE FROM non_replayable")
                    cases += 1
        assert cases > 500
    finally:
        state.close()


def test_one_statement_checks_each_token_by_the_reference_rule(tmp_path: Path) -> None:
    """The compare-and-set of many checks in one statement (a token each) stores and
    answers each exactly as the rule does alone, on every edge of the rule, with each
    row's own token state (a superseded serial stores nothing; revocations show)."""
    state = SqliteTokenState(tmp_path / "state.db")
    try:
        conn = state._db._connection()
        conn.execute("INSERT INTO mt_newest VALUES ('revoked', 1), ('superseded', 2)")
        conn.execute("INSERT INTO mt_sequence VALUES (1, 5)")
        conn.execute("INSERT INTO revoked VALUES ('identity', 'revoked'), ('serial', '1')")
        cases = 0
        for largest in _edges():
            calls = [(f"device{n}", 1, candidate) for n, candidate in enumerate(sorted(_candidates(largest)))]
            calls += [("revoked", 1, (largest + 1) % (MAX_LONG_VALUE + 1)), ("superseded", 1, 1)]
            conn.execute("DELETE FROM non_replayable")
            if largest:
                conn.executemany(sqlite_state._STORE_LARGEST_SQL, [(identity, 1, largest) for identity, _, _ in calls])
            answers: list[Any] = []
            for start in range(0, len(calls), sqlite_state.CHECK_ROWS):
                answers += sqlite_state._check_rows(calls[start : start + sqlite_state.CHECK_ROWS], conn)
                assert not conn.in_transaction
            stored = dict(((i, s), v) for i, s, v in conn.execute("SELECT * FROM non_replayable"))
            for (identity, serial, candidate), answer in zip(calls, answers, strict=True):
                accepted = identity != "superseded" and check_non_replayable_id(largest, candidate) is None
                assert (answer is not sqlite_state._RETRY) is accepted, (largest, candidate)
                assert stored.get((identity, serial), 0) == (candidate if accepted else largest)
                if accepted:
                    snapshot, verdict = answer
                    revoked = identity == "revoked"
                    assert verdict is None and (snapshot.identity_revoked, snapshot.serial_revoked) == (revoked, True)
                    assert (snapshot.newest_serial, snapshot.sequence) == ((1, 5) if revoked else (None, 5))
                cases += 1
        assert cases > 300
    finally:
        state.close()


def _plan(seed: int) -> list[tuple[str, tuple[Any, ...]]]:
    """A reproducible random sequence of every TokenState call (method name, arguments)."""
    rng = random.Random(seed)
    calls: list[tuple[str, tuple[Any, ...]]] = []
    next_id: dict[tuple[str, int], int] = {}
    for _ in range(SEQUENCE_CALLS):
        identity, serial = rng.choice(["a", "b", "c"]), rng.choice([1, 2])
        # Mostly the next ID, else a replay, a step back past the catch-up or a jump past the window.
        base = next_id.get((identity, serial), 0)
        candidate = max(0, base + rng.choice([1, 1, 1, 2, 0, -1, -C - 2, W + 1]))
        next_id[identity, serial] = max(base, candidate)
        kind = rng.choices(["check", "accept", "other"], weights=[55, 15, 30])[0]
        if kind == "check":
            calls.append(("check_master_token", (identity, serial, candidate)))
        elif kind == "accept":
            calls.append(("accept_non_replayable_id", (identity, serial, candidate)))
        else:
            calls.append(
                rng.choice(
                    [
                        ("check_master_token", (identity, serial)),
                        ("master_token_state", (identity, serial)),
                        ("record_new_master_token", (identity, serial)),
                        ("record_renewal", (identity, serial, rng.choice([0, 1]), rng.choice([1, 2]))),
                        ("user_id_token_revoked", (rng.choice(["alice", "bob", None]), serial)),
                        ("revoke_identity", (identity,)),
                        ("revoke_master_token", (serial,)),
                        ("revoke_user", (rng.choice(["alice", "bob"]),)),
                        ("revoke_user_id_token", (serial,)),
                        ("forget_master_token", (identity, serial)),
                    ]
                )
            )
    return calls


async def _answers(state: TokenState, plan: list[tuple[str, tuple[Any, ...]]], together: bool) -> list[Any]:
    """Each call's answer; ``together``: all made at once (they then share batches)."""
    if together:
        return list(await asyncio.gather(*(getattr(state, name)(*args) for name, args in plan)))
    return [await getattr(state, name)(*args) for name, args in plan]


@pytest.mark.parametrize("together", [False, True], ids=["one-by-one", "together"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_call_answers_as_the_in_memory_state(
    tmp_path: Path, compare_and_set: bool, seed: int, together: bool
) -> None:
    """Long random sequences of every call (checks under superseded serials and revoked
    identities, replays, renewals) give the in-memory state's answers: made one by one
    (each alone in its batch) and all at once (batches of many calls, in order)."""
    plan = _plan(seed)

    async def go() -> None:
        state = SqliteTokenState(tmp_path / "state.db")
        try:
            if together:  # all queued behind the held worker: batches of MAX_BATCH calls
                release, held = await _hold(state)
                made = asyncio.ensure_future(_answers(state, plan, together))
                for _ in range(10):  # passes of the loop: gather starts the calls, they queue
                    await asyncio.sleep(0)
                assert not made.done() and state._thread()._jobs.qsize() > 0
                release.set()
                assert await held
                answers = await made
            else:
                answers = await _answers(state, plan, together)
        finally:
            await state.aclose()
        expected = await _answers(MemoryTokenState(), plan, False)
        assert answers == expected
        verdicts = {answer[1] for answer in expected if isinstance(answer, tuple)}
        assert verdicts == {None, MslError.MESSAGE_REPLAYED, MslError.MESSAGE_REPLAYED_UNRECOVERABLE}

    asyncio.run(go())


def _rounds(seed: int) -> list[list[tuple[str, tuple[Any, ...]]]]:
    """Reproducible rounds of calls: mostly checks of distinct tokens (new IDs, replays,
    jumps past the window, superseded serials), now and then another call alone."""
    rng = random.Random(seed)
    rounds: list[list[tuple[str, tuple[Any, ...]]]] = []
    next_id: dict[tuple[str, int], int] = {}
    tokens = [(identity, serial) for identity in "abcdef" for serial in (1, 2)]
    for _ in range(60):
        if rng.random() < 0.2:
            identity, serial = rng.choice(tokens)
            rounds.append([rng.choice([
                ("record_new_master_token", (identity, serial)),
                ("revoke_identity", (identity,)),
                ("revoke_master_token", (serial,)),
                ("forget_master_token", (identity, serial)),
            ])])  # fmt: skip
            continue
        checks = []
        for identity, serial in rng.sample(tokens, rng.randint(2, len(tokens))):
            base = next_id.get((identity, serial), 0)
            candidate = max(0, base + rng.choice([1, 1, 1, 2, 0, -1, -C - 2, W + 1]))
            next_id[identity, serial] = max(base, candidate)
            checks.append(("check_master_token", (identity, serial, candidate)))
        rounds.append(checks)
    return rounds


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_checks_of_distinct_tokens_in_one_statement_answer_as_the_in_memory_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Rounds of checks of distinct tokens, each round queued behind the held worker so
    that it runs as one batch, answer as the in-memory state answers them one by one:
    in statements of several rows (CHECK_ROWS lowered to 4 to take several per round),
    refusals again in a transaction."""
    monkeypatch.setattr(sqlite_state, "CHECK_ROWS", 4)
    rounds = _rounds(seed)

    async def go() -> None:
        state = SqliteTokenState(tmp_path / "state.db")
        statements: list[str] = []
        answers: list[Any] = []
        try:
            await state._thread().call(None, (lambda: state._db._connection().set_trace_callback(statements.append),))
            for calls in rounds:
                release, held = await _hold(state)
                made = [asyncio.ensure_future(getattr(state, name)(*args)) for name, args in calls]
                await asyncio.sleep(0)
                release.set()
                assert await held
                answers.append(await asyncio.gather(*made))
        finally:
            await state.aclose()
        memory = MemoryTokenState()
        expected = [[await getattr(memory, name)(*args) for name, args in calls] for calls in rounds]
        assert answers == expected
        verdicts = {answer[1] for calls in expected for answer in calls if isinstance(answer, tuple)}
        assert verdicts == {None, MslError.MESSAGE_REPLAYED, MslError.MESSAGE_REPLAYED_UNRECOVERABLE}
        several = [s for s in statements if s.startswith("WITH") and s.count("VALUES") == 1 and "), (" in s]
        assert len(several) > len(rounds)  # rounds took several multi-row statements each

    asyncio.run(go())


def test_a_batched_statement_that_fails_stores_nothing_and_fails_each_of_its_checks(tmp_path: Path) -> None:
    """Checks batched into one statement while another connection holds the write
    lock: past the busy timeout each check fails (INTERNAL_EXCEPTION, which the factory
    answers as a transient failure), none is answered as accepted, and nothing was
    stored: once the lock is free the same IDs are accepted."""

    async def go() -> None:
        state = SqliteTokenState(tmp_path / "state.db", busy_timeout_ms=50)
        tokens = [(f"device{n}", 1) for n in range(5)]
        try:
            for identity, serial in tokens:
                await state.record_new_master_token(identity, serial)
            holder = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            try:
                release, held = await _hold(state)
                made = [asyncio.ensure_future(state.check_master_token(i, s, 1)) for i, s in tokens]
                await asyncio.sleep(0)
                release.set()
                assert await held
                for outcome in await asyncio.gather(*made, return_exceptions=True):
                    assert isinstance(outcome, MslException) and outcome.error is MslError.INTERNAL_EXCEPTION
            finally:
                holder.rollback()
                holder.close()
            again = await asyncio.gather(*(state.check_master_token(i, s, 1) for i, s in tokens))
            assert [verdict for _, verdict in again] == [None] * len(tokens)
        finally:
            await state.aclose()

    asyncio.run(go())


def test_a_failed_second_look_at_refused_checks_answers_none_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks a batched statement stored nothing for are looked at again in one
    transaction; when it fails, it is rolled back and each of them fails (no answer
    from inside it stands), while the checks the statement stored keep theirs."""

    def store_then_fail(identity: str, serial: int, candidate: int, conn: sqlite3.Connection) -> Any:
        conn.execute(sqlite_state._STORE_LARGEST_SQL, (identity, serial, 10_000))
        raise sqlite3.OperationalError("disk I/O error")  # as SQLite fails mid-transaction

    async def go() -> None:
        state = SqliteTokenState(tmp_path / "state.db")
        try:
            assert (await state.check_master_token("replayed", 1, 7))[1] is None
            monkeypatch.setattr(sqlite_state, "_CHECK", replace(sqlite_state._CHECK, fallback=store_then_fail))
            release, held = await _hold(state)
            made = [
                asyncio.ensure_future(state.check_master_token(identity, 1, n))
                for identity, n in (("a", 1), ("replayed", 7), ("b", 1))
            ]
            await asyncio.sleep(0)
            release.set()
            assert await held
            first, replayed, last = await asyncio.gather(*made, return_exceptions=True)
            assert isinstance(replayed, MslException) and replayed.error is MslError.INTERNAL_EXCEPTION
            assert isinstance(first, tuple) and first[1] is None and isinstance(last, tuple) and last[1] is None
            rows = dict(((i, s), v) for i, s, v in await state._run(_rows))
            assert rows == {("a", 1): 1, ("replayed", 1): 7, ("b", 1): 1}
        finally:
            await state.aclose()

    asyncio.run(go())


def test_a_check_is_one_statement_and_a_refusal_reads_in_a_transaction(tmp_path: Path) -> None:
    """An accepted check alone runs as one statement in autocommit mode (no BEGIN, no
    COMMIT); a refused one then runs again in a write transaction to name its error; a
    check under a superseded serial stores nothing; a revoked identity's ID is recorded
    as by the in-memory state (the factory refuses the token from the state's flags)."""

    async def go() -> None:
        state = SqliteTokenState(tmp_path / "state.db")
        statements: list[str] = []
        try:
            await state.record_new_master_token("device", 7)
            await state._thread().call(None, (lambda: state._db._connection().set_trace_callback(statements.append),))
            snapshot, verdict = await state.check_master_token("device", 7, 1)
            assert (snapshot.newest_serial, snapshot.sequence, verdict) == (7, 0, None)
            assert [s.split()[0] for s in statements] == ["WITH"]
            statements.clear()
            snapshot, verdict = await state.check_master_token("device", 7, 1)
            assert verdict is MslError.MESSAGE_REPLAYED
            assert [s.split()[0] for s in statements] == ["WITH", "BEGIN", "SELECT", "COMMIT"]
            assert (await state.check_master_token("device", 7, 1 + W + 1))[1] is (
                MslError.MESSAGE_REPLAYED_UNRECOVERABLE
            )
            await state.revoke_identity("device")
            snapshot, verdict = await state.check_master_token("device", 7, 2)
            assert snapshot.identity_revoked and verdict is None
            assert await state.accept_non_replayable_id("device", 7, 2) is MslError.MESSAGE_REPLAYED
            await state.record_new_master_token("device", 8)
            snapshot, verdict = await state.check_master_token("device", 7, 3)
            assert (snapshot.newest_serial, snapshot.sequence, verdict) == (8, None, None)
            rows = await state._run(_rows)
            assert rows == []  # the superseded serial's window is gone and nothing was stored
        finally:
            await state.aclose()

    asyncio.run(go())


def _rows(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return list(conn.execute("SELECT * FROM non_replayable"))


def test_batches_keep_each_calls_result_and_skip_cancelled_calls(tmp_path: Path) -> None:
    """More concurrent calls than one batch holds: each gets its own answer (a failing
    call fails alone, a cancelled one is dropped), in the order they were made."""

    async def go() -> None:
        state = SqliteTokenState(tmp_path / "state.db")
        try:
            await state.record_new_master_token("device", 1)
            release, held = await _hold(state)
            calls = [asyncio.ensure_future(state.check_master_token("device", 1, n)) for n in range(1, MAX_BATCH + 50)]
            failing = asyncio.ensure_future(state._run(_raise_msl))
            cancelled = asyncio.ensure_future(state.check_master_token("device", 1, 10_000))
            replays = [
                asyncio.ensure_future(state.check_master_token("device", 1, n))
                for n in (MAX_BATCH + 48, MAX_BATCH + 49)
            ]
            await asyncio.sleep(0)  # every call is queued behind the held worker
            cancelled.cancel()  # so the worker skips it: 10 000 is never stored
            release.set()
            assert await held
            results = await asyncio.gather(*calls, *replays)
            assert [verdict for _, verdict in results] == [None] * (MAX_BATCH + 49) + [MslError.MESSAGE_REPLAYED] * 2
            with pytest.raises(MslException) as caught:
                await failing
            assert caught.value.error is MslError.MESSAGE_ID_OUT_OF_RANGE
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            assert (await state.check_master_token("device", 1, MAX_BATCH + 50))[1] is None
        finally:
            await state.aclose()

    asyncio.run(go())


async def _hold(state: SqliteTokenState) -> tuple[threading.Event, asyncio.Future[Any]]:
    """Keep the state's worker thread busy until the event is set (bounded): calls made
    from then on queue up, and the worker then takes them together."""
    entered, release = threading.Event(), threading.Event()

    def wait() -> bool:
        entered.set()
        return release.wait(60)

    held = state._thread().call(None, (wait,))
    assert await asyncio.to_thread(entered.wait, 60)
    return release, held


def _raise_msl(conn: sqlite3.Connection) -> None:
    raise MslException(MslError.MESSAGE_ID_OUT_OF_RANGE)


def _raise_bug(conn: sqlite3.Connection) -> None:
    raise ValueError("a bug")


def test_calls_outside_transactions_run_alone_and_a_bug_fails_only_its_batch(tmp_path: Path) -> None:
    """A call that runs outside any transaction (closing the connection, as aclose does)
    queued between checks runs alone, between them. An unexpected exception in
    an operation rolls its batch back and reaches each of its callers (none of them took
    effect), and the worker thread keeps serving."""

    async def go() -> None:
        state = SqliteTokenState(tmp_path / "state.db")
        try:
            await state.record_new_master_token("device", 1)
            check = sqlite_state._CHECK
            # Queued together behind the held worker, so it takes them as one batch.
            release, held = await _hold(state)
            first = state._call(check, "device", 1, 1)
            closed = state._thread().call(None, (state._db.close,))  # reopened by the next call
            second = state._call(check, "device", 1, 2)
            release.set()
            assert await held
            assert [(await first)[1], await closed, (await second)[1]] == [None, None, None]
            release, held = await _hold(state)
            bug = state._call(sqlite_state._Operation(_raise_bug, write=True))
            rolled_back = state._call(check, "device", 1, 3)
            release.set()
            assert await held
            for future in (bug, rolled_back):
                with pytest.raises(ValueError, match="a bug"):
                    await future
            assert (await state.check_master_token("device", 1, 3))[1] is None
            assert (await state.check_master_token("device", 1, 3))[1] is MslError.MESSAGE_REPLAYED
        finally:
            await state.aclose()

    asyncio.run(go())


def test_event_loops_of_several_threads_share_one_state(tmp_path: Path) -> None:
    """The blocking facade runs an event loop per thread: each loop hears of its own
    calls, and the IDs they race for are each accepted once."""
    state = SqliteTokenState(tmp_path / "state.db")
    asyncio.run(state.record_new_master_token("device", 1))
    accepted: list[list[int]] = []
    lock = threading.Lock()

    def body() -> None:
        async def go() -> list[int]:
            results = await asyncio.gather(*(state.check_master_token("device", 1, n) for n in range(1, 41)))
            return [n for n, (_, verdict) in enumerate(results, 1) if verdict is None]

        mine = asyncio.run(go())
        with lock:
            accepted.append(mine)

    threads = [threading.Thread(target=body) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert not any(thread.is_alive() for thread in threads)
        ids = [n for mine in accepted for n in mine]
        assert len(accepted) == 4 and len(ids) == len(set(ids)) and 40 in ids
    finally:
        state.close()


def _race_in_child(path: str, barrier: Any, results: Any) -> None:
    async def main() -> tuple[list[int], list[str], bool]:
        state = SqliteTokenState(path)
        try:
            accepted: list[int] = []
            refusals: list[str] = []
            for n in range(1, RACE_IDS + 1):
                barrier.wait(timeout=60)  # blocks this loop; the state's thread is idle meanwhile
                snapshot, verdict = await state.check_master_token("device", 7, n)
                assert snapshot.newest_serial == 7
                if verdict is None:
                    accepted.append(n)
                else:
                    refusals.append(verdict.name)
            renewed = await state.record_renewal("device", 7, 0, 1)
            return accepted, refusals, renewed
        finally:
            await state.aclose()

    results.put(asyncio.run(main()))


def test_processes_racing_on_the_compare_and_set_accept_each_id_once(tmp_path: Path) -> None:
    """Processes sharing the file try the same ID at the same moment, round after round:
    each ID is accepted by exactly one of them, the others' compare-and-sets lose and
    they hear a replay, and exactly one of their racing renewals wins."""
    path = str(tmp_path / "state.db")
    setup = SqliteTokenState(path)
    asyncio.run(setup.record_new_master_token("device", 7))
    setup.close()
    mp = multiprocessing.get_context("fork")
    barrier = mp.Barrier(PROCESSES)
    results: multiprocessing.Queue[tuple[list[int], list[str], bool]] = mp.Queue()
    procs = [mp.Process(target=_race_in_child, args=(path, barrier, results)) for _ in range(PROCESSES)]
    outcomes = results_of(procs, results)
    accepted = sorted(n for ids, _, _ in outcomes for n in ids)
    assert accepted == list(range(1, RACE_IDS + 1))
    refused = [name for _, names, _ in outcomes for name in names]
    assert refused == [MslError.MESSAGE_REPLAYED.name] * (PROCESSES - 1) * RACE_IDS
    assert [renewed for _, _, renewed in outcomes].count(True) == 1

    async def after() -> None:
        state = SqliteTokenState(path)
        try:
            assert (await state.check_master_token("device", 7, RACE_IDS))[1] is MslError.MESSAGE_REPLAYED
            assert (await state.master_token_state("device", 7)).sequence == 1
        finally:
            await state.aclose()

    asyncio.run(after())


def test_new_files_get_small_pages_and_existing_files_keep_theirs(tmp_path: Path) -> None:
    """A check's commit writes whole pages to the log: a new state file uses
    STATE_PAGE_SIZE; a file made with another page size is used as it is."""
    fresh = SqliteTokenState(tmp_path / "fresh.db")
    old_path = tmp_path / "old.db"
    with sqlite3.connect(old_path) as conn:
        conn.execute("PRAGMA page_size = 4096")
        conn.execute("CREATE TABLE other (x INTEGER)")
    conn.close()
    old = SqliteTokenState(old_path)

    async def go() -> None:
        for state in (fresh, old):
            await state.record_new_master_token("device", 1)
            assert (await state.check_master_token("device", 1, 1))[1] is None
            assert (await state.check_master_token("device", 1, 1))[1] is MslError.MESSAGE_REPLAYED

    try:
        asyncio.run(go())
        page_size = "PRAGMA page_size"
        assert fresh._db._connection().execute(page_size).fetchone()[0] == sqlite_state.STATE_PAGE_SIZE
        assert old._db._connection().execute(page_size).fetchone()[0] == 4096
    finally:
        fresh.close()
        old.close()


def _batch_policy_allowed() -> bool:
    """Whether this system lets a thread make itself a batch thread (a probe thread tries)."""
    if not hasattr(os, "SCHED_BATCH"):
        return False
    allowed: list[bool] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        except OSError:
            allowed.append(False)
        else:
            allowed.append(True)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join(timeout=10)
    return allowed == [True]


@pytest.mark.skipif(not _batch_policy_allowed(), reason="no SCHED_BATCH here (Linux only; a sandbox may refuse it)")
def test_the_worker_runs_as_a_batch_thread_and_the_loop_does_not(tmp_path: Path) -> None:
    """Waking the worker must not preempt the event loop's thread: the worker is a
    SCHED_BATCH thread; the thread that made the state keeps its own policy."""
    state = SqliteTokenState(tmp_path / "state.db")
    before = os.sched_getscheduler(0)
    try:
        asyncio.run(state.record_new_master_token("device", 1))
        worker = state._thread()._thread
        assert worker.name == "missile-sqlite-state" and worker.native_id is not None
        assert os.sched_getscheduler(worker.native_id) == os.SCHED_BATCH
        assert os.sched_getscheduler(0) == before
    finally:
        state.close()
