"""A first end-to-end check: Bigcapital → Thredfi lands every customer once."""

from __future__ import annotations

from sandbox.server import Sandbox
from tests.conftest import SyncFn


async def test_given_seeded_bigcapital_when_synced_twice_then_second_run_writes_nothing(
    sandbox: Sandbox, sync: SyncFn
) -> None:
    sandbox["bigcapital"].seed_fake(40)
    first = await sync("bigcapital_to_thredfi")
    assert first.status == "succeeded", first.summary()
    assert first.counts.created == 40
    assert len(sandbox["thredfi"].records) == 40
    writes_before = len(sandbox["thredfi"].writes())
    second = await sync("bigcapital_to_thredfi")
    assert second.counts.unchanged == 40
    assert len(sandbox["thredfi"].writes()) == writes_before
