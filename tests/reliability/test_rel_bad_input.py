"""Issue 5, part 6: bad input.

Property-based: malformed source payloads (missing fields, wrong types, huge
strings, invalid e-mails and countries, odd unicode) go through every
connector's mapping and through the engine. Nothing crashes; every record
either lands exactly as it should or is quarantined with a reason naming
its field; the good records around it go through. Broken config files give
exit 2 and a message naming the key.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.responses import JSONResponse
from typer.testing import CliRunner

from connectors.model import CANONICAL_FIELDS
from sandbox.server import Sandbox
from state.store import Store
from tests.support.soak import PAIRS, config_text, load, seed_source, verify_async
from worker.cli import app
from worker.runner import build_connector
from worker.sync import run_pipeline

#: vendor field (dotted for nested objects) → canonical fields a refusal of it may name.
FIELDS: dict[str, dict[str, set[str]]] = {
    "bigcapital": {
        "display_name": {"name"},
        "customer_type": {"kind"},
        "email": {"email"},
        "work_phone": {"phone"},
        "personal_phone": {"mobile"},
        "website": {"website"},
        "billing_address1": {"address_line1"},
        "billing_address2": {"address_line2"},
        "billing_address_city": {"city"},
        "billing_address_state": {"state"},
        "billing_address_postcode": {"postal_code"},
        "billing_address_country": {"country"},
        "currency_code": {"currency"},
        "note": {"notes"},
        "first_name": {"first_name"},
        "last_name": {"last_name"},
        "company_name": {"company_name"},
    },
    "thredfi": {
        "company_name": {"name", "company_name", "kind"},
        "individual_name": {"name", "first_name", "last_name"},
        "email": {"email"},
        "office_phone": {"phone"},
        "mobile_phone": {"mobile"},
        # Piriod folds line 2 into its one address line: an over-long line 2 overflows line 1.
        "address_line1": {"address_line1"},
        "address_line2": {"address_line2", "address_line1"},
        "city": {"city"},
        # Without a country Piriod files the customer under its own (Chile): a tax id is needed
        # and the state must be Chilean.
        "state_county": {"state"},
        "postal_code": {"postal_code"},
        "country": {"country", "tax_id", "state"},
        "vat_number": {"tax_id"},
        "notes": {"notes"},
        "external_id": {"external_id"},
    },
    "piriod": {
        "name": {"name"},
        "email": {"email"},
        "phone": {"phone"},
        "website": {"website"},
        "address": {"address_line1"},
        "zip_code": {"postal_code"},
        "country": {"country"},
        "state": {"state"},
        "tax_id": {"tax_id"},
        "currency": {"currency"},
        "metadata": {"notes", "external_id"},
        "metadata.notes": {"notes"},
        "metadata.external_id": {"external_id"},
        "reference": {"external_id"},
    },
    "timbrix": {
        "legalName": {"name"},
        "taxId": {"tax_id", "kind"},
        "taxSystem": {"tax_system"},
        "email": {"email"},
        "defaultInvoiceUse": {"invoice_use"},
        "phone": {"phone"},
        "address": {"address_line1", "address_line2", "city", "state", "postal_code", "country"},
        "address.street": {"address_line1"},
        "address.exterior": {"address_line1"},
        "address.interior": {"address_line1"},
        "address.neighborhood": {"address_line2"},
        "address.city": {"city"},
        "address.state": {"state"},
        "address.zip": {"postal_code"},
        "address.country": {"country"},
    },
}
#: one pipeline out of every system and into every system, on records the target can take.
ENGINE_PAIRS = ["bt", "tb", "pb", "xt", "tp", "tx"]
DELETE = object()

odd_unicode = st.text(
    st.characters(categories=["Cc", "Cf", "Cs", "Co", "Mn", "Me", "So", "Sk", "Zs", "Zl", "Zp", "Lo"]),
    min_size=1,
    max_size=30,
)
huge = st.builds(lambda char, n: char * n, st.sampled_from(["x", "é", "😀", " ", "\u200b"]), st.integers(256, 20_000))
bad_values = st.one_of(
    st.just(DELETE),
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    huge,
    odd_unicode,
    st.sampled_from(["not-an-email", "a@b", "@@", "x@y..z", "customer@", "two@at@signs.com"]),
    st.sampled_from(["Atlantis", "ZZ", "XX", "123", "U S A", "united statez"]),
    st.sampled_from(["", "   ", "\t\n", "\x00", "null", "None"]),
)


def _set(record: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = record
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    if value is DELETE:
        node.pop(leaf, None)
    else:
        node[leaf] = value


def _ascii_json(self: JSONResponse, content: Any) -> bytes:
    """The emulators' JSON with escapes: lone surrogates and NaN reach the client as a real API could send them."""
    return json.dumps(content, ensure_ascii=True, allow_nan=True, separators=(",", ":")).encode("ascii")


# -- the mapping of every connector ------------------------------------------------------


def _fixture(system: str) -> dict[str, Any]:
    box = Sandbox()
    if system == "thredfi":
        seed_source(box, "tx", 1)  # a complete Mexican record
    else:
        box[system].seed_fake(1)
    return copy.deepcopy(next(iter(box[system].records.values())))


CONFIG = load(config_text("http://sandbox.test", "sqlite://"))
FIXTURES = {system: _fixture(system) for system in FIELDS}


@pytest.mark.parametrize("system", sorted(FIELDS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_given_a_malformed_vendor_record_when_read_then_never_raises_and_any_problem_names_its_field(
    system: str, data: st.DataObject
) -> None:
    connector = build_connector(CONFIG, system)
    raw = copy.deepcopy(FIXTURES[system])
    fields = data.draw(st.lists(st.sampled_from(sorted(FIELDS[system])), min_size=1, max_size=3, unique=True))
    for name in fields:
        _set(raw, name, data.draw(bad_values, label=name))

    remote = connector.read(raw)

    allowed = set().union(*(FIELDS[system][f] for f in fields))
    if remote.customer is None:
        assert remote.problem is not None
        assert remote.problem.field in allowed, (fields, remote.problem)
        assert remote.problem.field in CANONICAL_FIELDS or remote.problem.field == "external_id"
    else:
        for name in CANONICAL_FIELDS:  # what is read is clean text the rest can store and hash
            value = getattr(remote.customer, name)
            if isinstance(value, str):
                value.encode("utf-8")
                assert value == value.strip()
                assert value
        if remote.external_id is not None:
            remote.external_id.encode("utf-8")


@pytest.mark.parametrize("system", sorted(FIELDS))
@pytest.mark.parametrize("raw", [None, 42, "text", [], {"no": "id"}, {"id": None}, {"id": ""}])
def test_given_a_record_that_is_not_a_record_when_read_then_a_problem_on_id(system: str, raw: object) -> None:
    remote = build_connector(CONFIG, system).read(raw)
    assert remote.customer is None
    assert remote.problem is not None
    assert remote.problem.field == "id"


# -- through the engine -------------------------------------------------------------------


@pytest.mark.parametrize("pair", ENGINE_PAIRS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_given_malformed_source_records_when_synced_then_the_run_goes_on_and_each_is_quarantined_naming_its_field(
    pair: str, data: st.DataObject
) -> None:
    source, target = PAIRS[pair]
    pipeline = f"{source}_to_{target}"
    box = Sandbox()
    seed_source(box, pair, 6, seed=data.draw(st.integers(0, 1000), label="seed"))
    records = list(box[source].records.values())
    bad: dict[str, set[str]] = {}
    for record in data.draw(st.lists(st.sampled_from(records), min_size=1, max_size=4, unique_by=id)):
        fields = data.draw(st.lists(st.sampled_from(sorted(FIELDS[source])), min_size=1, max_size=2, unique=True))
        for name in fields:
            _set(record, name, data.draw(bad_values, label=f"{record['id']}.{name}"))
        bad[str(record["id"])] = set().union(*(FIELDS[source][f] for f in fields))

    result, quarantine, check = asyncio.run(_sync_twice(box, pipeline, bad))

    assert result.status in ("succeeded", "partial"), result.summary()
    for entry in quarantine:
        assert entry.source_id in bad, f"a good record was quarantined: {entry.field}: {entry.reason}"
        assert entry.field in bad[entry.source_id], (entry.field, entry.reason, bad[entry.source_id])
    assert result.counts.failed == len(quarantine)
    assert check.clean, check  # the others landed exactly once and current, nothing quarantined landed


async def _sync_twice(box: Sandbox, pipeline: str, bad: Mapping[str, set[str]]) -> tuple[Any, list[Any], Any]:
    config = load(config_text("http://sandbox.test", "sqlite://"))
    transports = {name: httpx.ASGITransport(app=box.app) for name in config.connections}
    store = Store("sqlite://")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(JSONResponse, "render", _ascii_json)
        first = await run_pipeline(config, pipeline, store=store, transports=transports)
        # A second run: quarantined records stay there, the rest is quiet.
        result = await run_pipeline(config, pipeline, store=store, transports=transports)
        quarantine = store.quarantined(pipeline)
        check = await verify_async(box, config, pipeline, skip={q.source_id for q in quarantine})
    store.close()
    assert first.counts.failed == result.counts.failed, (first.summary(), result.summary())
    assert result.counts.created == result.counts.updated == result.counts.archived == 0, result.summary()
    return result, quarantine, check


def test_given_an_unknown_piriod_state_when_pushed_then_quarantined_naming_state_and_the_run_goes_on() -> None:
    """A value the target cannot express (no such state in Piriod's catalog) fails at push time."""
    box = Sandbox()
    seed_source(box, "tp", 4)
    (odd,) = box["thredfi"].seed(
        [
            {
                "company_name": "Nowhere SpA",
                "email": "nowhere@example.cl",
                "address_line1": "Calle 1",
                "country": "CL",
                "vat_number": "11111111-1",
                "state_county": "Atlantis",
            }
        ]
    )

    async def go() -> tuple[Any, list[Any]]:
        config = load(config_text("http://sandbox.test", "sqlite://"))
        store = Store("sqlite://")
        transports = {name: httpx.ASGITransport(app=box.app) for name in config.connections}
        result = await run_pipeline(config, "thredfi_to_piriod", store=store, transports=transports)
        return result, store.quarantined("thredfi_to_piriod")

    result, quarantine = asyncio.run(go())

    assert result.status == "partial", result.summary()
    assert result.counts.created == 4, result.summary()
    (entry,) = quarantine
    assert (entry.source_id, entry.field) == (odd["id"], "state")


# -- broken config files -------------------------------------------------------------------------


def _valid_config() -> dict[str, Any]:
    return tomllib.loads(config_text("http://127.0.0.1:9", "sqlite:///unused.db"))


def _toml(raw: Mapping[str, Any]) -> str:
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        return str(v)

    def table(name: str, body: Mapping[str, Any]) -> None:
        lines.append(f"[{name}]")
        lines.extend(f"{json.dumps(k)} = {value(v)}" for k, v in body.items() if not _is_table(v))
        for k, v in body.items():
            if _is_table(v):
                table(f"{name}.{json.dumps(k)}", v)

    for section, body in raw.items():
        table(section, body)
    return "\n".join(lines) + "\n"


def _is_table(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values())


# (path, value, what the message must name)
BREAKAGES: list[tuple[tuple[str, ...], Any, str]] = [
    (("connections", "thredfi", "api_kee"), "x", "connections.thredfi.api_kee"),
    (("connections", "bigcapital", "system"), "quickbooks", "connections.bigcapital.system"),
    (("connections", "piriod", "max_concurrency"), "many", "connections.piriod.max_concurrency"),
    (("connections", "piriod", "max_concurrency"), 0, "connections.piriod.max_concurrency"),
    (("connections", "timbrix", "requests_per_second"), -1, "connections.timbrix.requests_per_second"),
    (("connections", "thredfi", "timeout_s"), "soon", "connections.thredfi.timeout_s"),
    (("pipelines", "thredfi_to_bigcapital", "target"), "ledger", "pipelines.thredfi_to_bigcapital.target"),
    (("pipelines", "thredfi_to_bigcapital", "source"), None, "pipelines.thredfi_to_bigcapital.source"),
    (("pipelines", "bigcapital_to_thredfi", "schedule"), "every tuesday", "pipelines.bigcapital_to_thredfi.schedule"),
    (("pipelines", "bigcapital_to_thredfi", "match_on"), ["phone"], "pipelines.bigcapital_to_thredfi.match_on"),
    (
        ("pipelines", "bigcapital_to_thredfi", "max_delete_share"),
        1.5,
        "pipelines.bigcapital_to_thredfi.max_delete_share",
    ),
    (
        ("pipelines", "bigcapital_to_thredfi", "propagate_deletes"),
        "yes please",
        "pipelines.bigcapital_to_thredfi.propagate_deletes",
    ),
    (("pipelines", "bigcapital_to_thredfi", "defaults"), {"colour": "red"}, "pipelines.bigcapital_to_thredfi.defaults"),
    (("pipelines", "bigcapital_to_thredfi", "retries"), 3, "pipelines.bigcapital_to_thredfi.retries"),
    (("state", "uri"), "sqlite://", "state.uri"),
    (("webhooks",), {"url": "x"}, "webhooks"),
    (("connections", "thredfi", "api_key"), "${CUSTSYNC_TEST_UNSET_VARIABLE}", "CUSTSYNC_TEST_UNSET_VARIABLE"),
]


@pytest.mark.parametrize(("path", "value", "names"), BREAKAGES, ids=[b[2] for b in BREAKAGES])
@pytest.mark.parametrize("command", ["run", "check"])
def test_given_a_broken_config_when_a_command_loads_it_then_exit_2_and_the_message_names_the_key(
    path: tuple[str, ...], value: Any, names: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = _valid_config()
    node = raw
    for key in path[:-1]:
        node = node[key]
    if value is None:
        node.pop(path[-1])
    else:
        node[path[-1]] = value
    config = tmp_path / "broken.toml"
    config.write_text(_toml(raw), encoding="utf-8")
    monkeypatch.delenv("CUSTSYNC_TEST_UNSET_VARIABLE", raising=False)
    args = ["run", "bigcapital_to_thredfi", "-c", str(config)] if command == "run" else ["check", "-c", str(config)]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 2, result.output
    assert names in result.output, result.output
    assert str(config) in result.output or names in result.output


@pytest.mark.parametrize("text", ["[state\nurl=", "= 1", "[pipelines.x]\nsource = 'a'\nsource = 'b'\n", "\x00"])
def test_given_a_file_that_is_not_toml_when_loaded_then_exit_2_and_says_so(text: str, tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "anything", "-c", str(config)])
    assert result.exit_code == 2
    assert "not valid TOML" in result.output


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_given_any_key_of_any_table_renamed_when_loaded_then_exit_2_naming_it(data: st.DataObject) -> None:
    """Property: a typo in any key anywhere is refused by name, never silently ignored."""
    raw = _valid_config()
    section = data.draw(st.sampled_from(["state", "broker", "connections", "pipelines"]))
    node = raw[section]
    where = [section]
    if section in ("connections", "pipelines"):
        name = data.draw(st.sampled_from(sorted(node)))
        node, where = node[name], [section, name]
    key = data.draw(st.sampled_from(sorted(node)))
    typo = key + data.draw(st.sampled_from(["_", "s", "X", "2"]))
    node[typo] = node.pop(key)
    path = Path(f"/tmp/custsync-broken-{random.randrange(10**9)}.toml")
    try:
        path.write_text(_toml(raw), encoding="utf-8")
        result = CliRunner().invoke(app, ["run", "bigcapital_to_thredfi", "-c", str(path)])
    finally:
        path.unlink(missing_ok=True)
    assert result.exit_code == 2, result.output
    named = {".".join([*where, typo]), ".".join([*where, key])}
    assert any(n in result.output for n in named), (named, result.output)


async def test_given_identifiers_the_state_store_cannot_keep_when_synced_then_quarantined_on_sqlite_and_postgres(
    store: Store,
) -> None:
    """An external_id longer than the store's key, or with control characters, and a
    name that is not valid unicode: each is quarantined naming its field, on both stores."""
    box = Sandbox()
    seed_source(box, "tb", 4)
    long_id, control_id, bad_name, *good = list(box["thredfi"].records.values())
    long_id["external_id"] = "x" * 300
    control_id["external_id"] = "ext\x00id\n1"
    bad_name["individual_name"], bad_name["company_name"] = "", "Caf\ud800 Ltd"
    config = load(config_text("http://sandbox.test", store.url))
    transports = {name: httpx.ASGITransport(app=box.app) for name in config.connections}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(JSONResponse, "render", _ascii_json)
        result = await run_pipeline(config, "thredfi_to_bigcapital", store=store, transports=transports)

    assert result.status == "partial", result.summary()
    assert (result.counts.created, result.counts.failed) == (len(good), 3)
    fields = {q.source_id: q.field for q in store.quarantined("thredfi_to_bigcapital")}
    assert fields == {long_id["id"]: "external_id", control_id["id"]: "external_id", bad_name["id"]: "name"}
