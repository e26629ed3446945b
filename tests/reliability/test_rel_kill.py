"""Issue 5, part 4: the kill test.

``custsync run`` runs as a real process against the sandbox served on loopback
from this test process (so the emulators' state survives the child), and the
engine SIGKILLs itself at a chosen point (injected by ``scripts/crashing_run.py``
through the engine's ``RunHooks``, never read by custsync): right after
its Nth remote write, before the state commit that records it
(``write:N``), or right after its Nth state commit (``commit:N``). Then it
runs again (in process for the matrix, as a process for the dedicated test),
and every source customer must be in the target exactly once with current
data; a third run must write nothing.

13 kill points per pair, 4 pairs (into Thredfi, Bigcapital, Piriod and
Timbrix): 52 in CI, every one of which must really kill the child. The long
run is ``scripts/kill_soak.py`` (1,000+ points), on the helpers of ``tests/support/soak.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.soak import PAIRS, Harness, Outcome, soak, summarise

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

COUNT = 30
#: (phase, crash point): creates on an empty target, then updates, (in)activations
#: and new customers on a synced one; kills after writes and after commits.
POINTS = [
    *[("create", f"write:{n}") for n in (1, 2, 5, 11, 17, 24, 30)],
    ("create", "commit:1"),  # the intents are committed, nothing written yet
    ("create", "commit:2"),
    *[("update", f"write:{n}") for n in (1, 4, 9)],
    ("update", "commit:1"),
]
WORKERS = max(1, min(2, os.cpu_count() or 1))


@pytest.mark.parametrize("pair", ["bt", "tb", "tp", "tx"])
def test_given_sync_killed_at_a_write_or_commit_when_run_again_then_each_customer_is_in_the_target_once_and_current(
    pair: str, tmp_path: Path
) -> None:
    source, target = PAIRS[pair]

    # The killed run is a real process; the recovery run goes in process (the same
    # engine, without a second interpreter start) to keep CI near two minutes.
    results = soak(
        [(pair, phase, crash) for phase, crash in POINTS],
        count=COUNT,
        workers=WORKERS,
        workdir=tmp_path,
        recover_in_process=True,
    )

    report = summarise(results)
    failed = [str(r) for r in results if not r.ok]
    assert not failed, "\n".join([report, *failed])
    not_killed = [r.crash_at for r in results if not r.killed]
    assert not not_killed, f"{source}->{target}: these points were never reached: {not_killed}"
    assert len(results) == len(POINTS)


def test_given_a_kill_after_a_create_before_its_commit_when_rerun_then_the_create_is_recovered_not_repeated(
    tmp_path: Path,
) -> None:
    """The sharpest point, checked on its own, the recovery run a real process too: a
    Bigcapital create (no idempotency, no identity slot) is applied, the process dies
    before recording it, and the next run finds it by e-mail instead of creating it again."""
    with Harness(tmp_path, count=COUNT) as harness:
        outcome: Outcome = harness.kill_point("tb", "write:1")
        creates = [r for r in harness.box["bigcapital"].requests if r.method == "POST" and r.status == 201]

    assert outcome.killed, str(outcome)
    assert outcome.ok, str(outcome)
    assert len(creates) == COUNT, "exactly one create per customer across the killed run and the rerun"
