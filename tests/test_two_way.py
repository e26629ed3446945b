"""Two-way is safe: opposite pipelines never echo, never copy, never clear what the other side lacks."""

from __future__ import annotations

import pytest

from sandbox.server import Sandbox
from tests.conftest import SyncFn


@pytest.mark.parametrize(("a", "b"), [("bigcapital", "thredfi"), ("thredfi", "bigcapital"), ("piriod", "thredfi")])
async def test_given_one_way_synced_when_reverse_pipeline_runs_then_nothing_is_written_back(
    sandbox: Sandbox, sync: SyncFn, a: str, b: str
) -> None:
    sandbox[a].seed_fake(30)
    first = await sync(f"{a}_to_{b}")
    assert first.counts.created == 30 - first.counts.failed
    writes_a, writes_b = len(sandbox[a].writes()), len(sandbox[b].writes())

    reverse = await sync(f"{b}_to_{a}")

    assert reverse.counts.created == 0, reverse.summary()
    assert reverse.counts.updated == 0, reverse.summary()
    assert reverse.counts.archived == 0, reverse.summary()
    assert len(sandbox[a].writes()) == writes_a
    assert len(sandbox[b].writes()) == writes_b
    assert len(sandbox[a].records) == 30


async def test_given_field_only_source_keeps_when_reverse_edit_syncs_then_that_field_survives(
    sandbox: Sandbox, sync: SyncFn
) -> None:
    sandbox["bigcapital"].seed_fake(9)
    await sync("bigcapital_to_thredfi")
    with_website = {i: r["website"] for i, r in sandbox["bigcapital"].records.items() if r.get("website")}
    assert with_website, "the fixture should hold some websites"
    for record in sandbox["thredfi"].records.values():
        sandbox["thredfi"].admin_edit(record, {"notes": "edited in thredfi"})

    back = await sync("thredfi_to_bigcapital")

    assert back.counts.updated == 9 - back.counts.failed - back.counts.archived
    for record_id, website in with_website.items():
        assert sandbox["bigcapital"].records[record_id]["website"] == website
        assert sandbox["bigcapital"].records[record_id]["note"] == "edited in thredfi"
