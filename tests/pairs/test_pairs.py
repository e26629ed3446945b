"""All 12 directed pairs sync one shared fixture set, end to end, over real HTTP.

For each ``SOURCE_to_TARGET`` pipeline of the sandbox config, the fixtures
the source can hold are seeded into its emulator in its own vendor shape,
the pipeline runs, and then:

- the source read them back as the fixtures, on the fields the source keeps;
- every record the target can hold landed once, and its canonical fields
  equal the source's record as shaped for the target, on the fields the
  target keeps (archived where the target can archive);
- every other one is quarantined, its reason starting with a canonical field
  name, including the refusals ``fixtures.EXPECTED_REFUSALS`` names by hand;
- a second run writes nothing;
- docs/fidelity.md says how many land.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from connectors.model import CANONICAL_FIELDS, Customer
from sandbox.server import SYSTEMS, Sandbox
from state.store import Store
from tests.conftest import make_config
from tests.pairs.fixtures import EXPECTED_REFUSALS, FIXTURES, HELD_BY, seed
from tests.pairs.test_fidelity_doc import DOC, table_after
from worker.config import AppConfig
from worker.diff import apply_defaults
from worker.runner import build_connector
from worker.sync import run_pipeline

PAIRS = [(source, target) for source in SYSTEMS for target in SYSTEMS if source != target]
#: Timbrix needs a régimen fiscal and an uso CFDI no other system holds: the
#: pipelines into it choose them, as a user would in ``defaults``. Only these:
#: the sandbox's bigcapital_to_timbrix also defaults a generic RFC (a demo choice),
#: which would hide what Bigcapital itself cannot carry.
TIMBRIX_DEFAULTS = {"tax_system": "601", "invoice_use": "G03"}


def pairs_config(tmp_path: Path) -> AppConfig:
    config = make_config(f"sqlite:///{tmp_path}/s.db")
    pipelines = {
        name: p.model_copy(update={"defaults": dict(TIMBRIX_DEFAULTS), "match_on": None})
        if p.target == "timbrix"
        else p
        for name, p in config.pipelines.items()
    }
    return config.model_copy(update={"pipelines": pipelines})


def documented_landing(source: str, target: str) -> tuple[int, int]:
    """(landed, seeded) for the pair, from docs/fidelity.md's fixture-set table."""
    _, *rows = table_after("## What the shared fixture set shows", DOC.read_text(encoding="utf-8"))
    for pair, landed, *_ in rows:
        if [part.strip() for part in pair.split("→")] == [source, target]:
            done, _, of = landed.partition(" of ")
            return int(done), int(of)
    pytest.fail(f"docs/fidelity.md does not say what {source} → {target} lands")


def fields(customer: Customer | None, names: frozenset[str]) -> dict[str, object]:
    assert customer is not None
    return {name: getattr(customer, name) for name in sorted(names)}


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{s}_to_{t}" for s, t in PAIRS])
async def test_given_shared_fixtures_in_source_when_pair_syncs_then_target_holds_what_it_can_and_rerun_writes_nothing(
    source: str, target: str, sandbox: Sandbox, transport: httpx.ASGITransport, tmp_path: Path
) -> None:
    config = pairs_config(tmp_path)
    name = f"{source}_to_{target}"
    pipeline = config.pipeline(name)
    src, tgt = build_connector(config, source), build_connector(config, target)  # mapping only, no HTTP
    seeded = seed(source, sandbox[source], {k: FIXTURES[k] for k in sorted(HELD_BY[source])})
    store = Store(config.state.url)
    transports = {connection: transport for connection in config.connections}

    try:
        first = await run_pipeline(config, name, store=store, transports=transports)
        writes = len(sandbox[target].writes())
        second = await run_pipeline(config, name, store=store, transports=transports)

        quarantine = {q.source_id: q for q in store.quarantined(name)}
        source_links = store.links_by_remote(source, list(seeded))
        target_links = store.links_by_identity(target, [link.identity_id for link in source_links.values()])
    finally:
        store.close()

    assert first.status in ("succeeded", "partial"), first.summary()
    landed: dict[str, str] = {}
    for source_id, key in seeded.items():
        fixture = FIXTURES[key]
        read = src.read(sandbox[source].records[source_id])
        # The source lists the fixture as entered, on every field it keeps.
        src_kept = src.spec.fields | {"name"} | ({"active"} if src.spec.archive else set())
        assert fields(read.customer, src_kept) == fields(src.shape(fixture), src_kept), f"{source} read of {key}"
        assert read.customer is not None
        expected = tgt.shape(apply_defaults(read.customer, pipeline.defaults))
        problems = tgt.problems(expected)
        refusal = EXPECTED_REFUSALS.get((key, target))  # written by hand from the systems' rules
        if problems or refusal:
            entry = quarantine.get(source_id)
            why = problems[0] if problems else refusal
            assert entry is not None, f"{key}: {target} cannot hold it ({why}) but it was not quarantined"
            identity = source_links.get(source_id)  # none when refused before any identity was made
            link = target_links.get(identity.identity_id) if identity else None
            assert link is None or link.remote_id is None, f"{key} quarantined but linked"
            field = entry.reason.split(":", 1)[0]
            assert field in CANONICAL_FIELDS, f"the reason must start with a canonical field: {entry.reason}"
            assert entry.field == field
            if problems:
                assert field == problems[0].field
            if refusal:
                parts = [part.strip() for part in entry.reason.split(";")]
                assert any(part.startswith(refusal) for part in parts), entry.reason
            continue
        assert source_id not in quarantine, (
            f"{key} quarantined: {quarantine.get(source_id) and quarantine[source_id].reason}"
        )
        link = target_links.get(source_links[source_id].identity_id)
        assert link is not None, f"{key} did not land in {target}"
        assert link.remote_id is not None, f"{key} is only pending in {target}"
        landed[key] = link.remote_id
        got = tgt.read(sandbox[target].records[link.remote_id])
        tgt_kept = tgt.spec.fields | {"name"}
        assert fields(got.customer, tgt_kept) == fields(expected, tgt_kept), f"{key} as landed in {target}"
        assert got.customer is not None
        assert got.customer.active is (expected.active if tgt.spec.archive else True), f"{key} active"

    assert len(sandbox[target].records) == len(landed), "nothing lands twice or uninvited"
    assert documented_landing(source, target) == (len(landed), len(seeded)), "docs/fidelity.md is out of date"
    assert first.counts.created == len(landed)
    assert first.counts.failed == len(seeded) - len(landed) == len(quarantine)
    assert sandbox[source].writes() == [], "a source is only read"
    # The second run: zero writes, every landed record unchanged, the refused ones still refused.
    assert len(sandbox[target].writes()) == writes
    assert (second.counts.created, second.counts.updated, second.counts.archived) == (0, 0, 0), second.summary()
    assert second.counts.unchanged == len(landed)
    assert second.counts.failed == len(quarantine)
