"""The config file: ``${ENV}``, typed tables, and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import ConfigError, load_config

EXAMPLE = """
[state]
url = "sqlite:///custsync.db"

[broker]
url = "redis://localhost:6379/0"

[connections.books]
system = "bigcapital"
base_url = "https://api.bigcapital.com"
api_key = "${BIGCAPITAL_API_KEY}"

[connections.ledger]
system = "thredfi"
base_url = "https://sandbox.thredfi.com"
partner_uuid = "${THREDFI_PARTNER_UUID}"
api_key = "${THREDFI_API_KEY}"
business_id = "964f4325-3efb-400d-a1bd-8b1f29e828cf"
max_concurrency = 4
requests_per_second = 5
timeout_s = 10

[connections.billing_cl]
system = "piriod"
base_url = "https://api.piriod.com"
api_token = "${PIRIOD_API_TOKEN}"
workspace = "acc_01H8XYZ123ABC"
test_mode = true

[connections.cfdi]
system = "timbrix"
base_url = "https://api.timbrix.com/api"
api_key = "${TIMBRIX_API_KEY}"
organization_id = "550e8400-e29b-41d4-a716-446655440000"

[pipelines.books_to_ledger]
source = "books"
target = "ledger"
schedule = "*/15 * * * *"
archive = true
defaults = { currency = "GBP" }
match_on = ["tax_id", "email"]
truncate = false

[pipelines.ledger_to_books]
source = "ledger"
target = "books"
"""

ENV = {
    "BIGCAPITAL_API_KEY": "bc_secret_key_123456",
    "THREDFI_PARTNER_UUID": "cb77028d-a8b4-581e-9a8d-95c7ad672e9d",
    "THREDFI_API_KEY": "thred_sk_secret",
    "PIRIOD_API_TOKEN": "piriod-secret",
    "TIMBRIX_API_KEY": "timbrix-secret",
}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "custsync.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=ENV if environ is None else environ)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    return message


def test_given_product_example_when_loaded_then_every_table_is_typed_and_env_interpolated(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, EXAMPLE), environ=ENV)

    assert set(config.connections) == {"books", "ledger", "billing_cl", "cfdi"}
    books = config.connections["books"]
    assert books.system == "bigcapital"
    assert books.api_key.get_secret_value() == "bc_secret_key_123456"  # type: ignore[attr-defined]
    assert "bc_secret_key_123456" not in repr(config), "secrets never show in a repr"
    ledger = config.connections["ledger"]
    assert (ledger.max_concurrency, ledger.requests_per_second, ledger.timeout_s) == (4, 5, 10)
    pipeline = config.pipeline("books_to_ledger")
    assert (pipeline.source, pipeline.target, pipeline.schedule) == ("books", "ledger", "*/15 * * * *")
    assert pipeline.defaults == {"currency": "GBP"}
    assert pipeline.match_on == ["tax_id", "email"]
    other = config.pipeline("ledger_to_books")
    assert (other.schedule, other.archive, other.truncate, other.match_on, other.defaults) == (
        None,
        True,
        False,
        None,
        {},
    )
    # A relative SQLite file lives next to the config file, wherever custsync is started (13.4).
    assert config.state.url == f"sqlite:///{tmp_path.resolve() / 'custsync.db'}"


def test_given_state_and_broker_overrides_when_loaded_then_they_win(tmp_path: Path) -> None:
    config = load_config(
        _write(tmp_path, EXAMPLE), environ=ENV, state_url="sqlite:///other.db", broker_url="redis://elsewhere:6379/1"
    )

    assert config.state.url == "sqlite:///other.db"
    assert config.broker.url == "redis://elsewhere:6379/1"


def test_given_env_var_inside_a_string_when_loaded_then_it_is_substituted_in_place(tmp_path: Path) -> None:
    text = EXAMPLE.replace('base_url = "https://api.piriod.com"', 'base_url = "https://${PIRIOD_HOST}/v1"')
    config = load_config(_write(tmp_path, text), environ={**ENV, "PIRIOD_HOST": "piriod.example"})
    assert config.connections["billing_cl"].base_url == "https://piriod.example/v1"


def test_given_missing_env_var_when_loaded_then_error_names_file_key_and_variable(tmp_path: Path) -> None:
    environ = {k: v for k, v in ENV.items() if k != "THREDFI_API_KEY"}
    message = _error(tmp_path, EXAMPLE, environ)
    assert "connections.ledger.api_key" in message
    assert "THREDFI_API_KEY" in message


CASES = [
    pytest.param(
        EXAMPLE.replace("test_mode = true", 'test_mode = true\ncolour = "blue"'),
        ["connections.billing_cl.colour", "unknown key"],
        id="unknown connection key",
    ),
    pytest.param(
        EXAMPLE.replace("truncate = false", "truncate = false\nretries = 3"),
        ["pipelines.books_to_ledger.retries", "unknown key"],
        id="unknown pipeline key",
    ),
    pytest.param(EXAMPLE + "\n[extras]\nx = 1\n", ["extras", "unknown section"], id="unknown section"),
    pytest.param(
        EXAMPLE.replace('url = "sqlite:///custsync.db"', 'url = "sqlite:///x.db"\npool = 3'),
        ["state.pool", "unknown key"],
        id="unknown state key",
    ),
    pytest.param(
        EXAMPLE.replace('system = "timbrix"', 'system = "quickbooks"'),
        ["connections.cfdi.system", "quickbooks", "bigcapital"],
        id="unknown system",
    ),
    pytest.param(
        EXAMPLE.replace('target = "ledger"', 'target = "legder"'),
        ["pipelines.books_to_ledger.target", "legder", "known"],
        id="pipeline names missing connection",
    ),
    pytest.param(
        EXAMPLE.replace('source = "ledger"', 'source = "nope"'),
        ["pipelines.ledger_to_books.source", "nope"],
        id="pipeline names missing source",
    ),
    pytest.param(
        EXAMPLE.replace('"*/15 * * * *"', '"every 15 minutes"'),
        ["pipelines.books_to_ledger.schedule", "cron"],
        id="bad cron",
    ),
    pytest.param(
        EXAMPLE.replace('"*/15 * * * *"', '"61 * * * *"'),
        ["pipelines.books_to_ledger.schedule"],
        id="cron minute out of range",
    ),
    pytest.param(
        EXAMPLE.replace('defaults = { currency = "GBP" }', 'defaults = { colour = "red" }'),
        ["pipelines.books_to_ledger.defaults", "colour"],
        id="default for a non-canonical field",
    ),
    pytest.param(
        EXAMPLE.replace('match_on = ["tax_id", "email"]', 'match_on = ["phone"]'),
        ["pipelines.books_to_ledger.match_on", "phone"],
        id="match_on a field not matchable",
    ),
    pytest.param(
        EXAMPLE.replace('target = "ledger"', 'target = "books"'),
        ["pipelines.books_to_ledger", "same connection"],
        id="source is target",
    ),
    pytest.param(
        EXAMPLE.replace('business_id = "964f4325-3efb-400d-a1bd-8b1f29e828cf"\n', ""),
        ["connections.ledger.business_id", "missing"],
        id="missing credential",
    ),
    pytest.param(
        EXAMPLE.replace("max_concurrency = 4", "max_concurrency = 0"),
        ["connections.ledger.max_concurrency"],
        id="out of range setting",
    ),
    pytest.param(
        EXAMPLE.replace("archive = true", 'archive = "sometimes"'),
        ["pipelines.books_to_ledger.archive"],
        id="wrong type",
    ),
    pytest.param(EXAMPLE + '\n[connections.books]\nsystem = "x"\n', ["not valid TOML"], id="table defined twice"),
    pytest.param('[state\nurl = "x"\n', ["not valid TOML"], id="bad TOML"),
    pytest.param("pipelines = 3\n", ["pipelines", "table"], id="section that is not a table"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_given_invalid_config_when_loaded_then_error_names_file_and_key(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    message = _error(tmp_path, text)
    for part in expected:
        assert part in message, message
    for secret in ENV.values():
        assert secret not in message, "errors never show secrets"


def test_given_no_file_when_loaded_then_error_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match="no such config file") as caught:
        load_config(path, environ=ENV)
    assert str(path) in str(caught.value)


def test_given_unknown_pipeline_when_looked_up_then_error_lists_known_ones(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, EXAMPLE), environ=ENV)
    with pytest.raises(ConfigError) as caught:
        config.pipeline("nope")
    assert "nope" in str(caught.value)
    assert "books_to_ledger" in str(caught.value)


# -- 13.3: every error at once, suggestions, empty variables, base URLs; 9.11: one cron check --------


def test_given_several_mistakes_when_loaded_then_every_one_is_reported_one_line_each(tmp_path: Path) -> None:
    text = (
        EXAMPLE.replace("test_mode = true", 'test_mode = true\ncolour = "blue"')
        .replace("max_concurrency = 4", "max_concurrency = 0")
        .replace('target = "ledger"', 'target = "legder"')
        + "\n[extras]\nx = 1\n"
    )
    message = _error(tmp_path, text)

    lines = message.splitlines()
    assert len(lines) == 4, lines
    path = tmp_path / "custsync.toml"
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    joined = "\n".join(lines)
    for key in (
        "connections.billing_cl.colour",
        "connections.ledger.max_concurrency",
        "pipelines.books_to_ledger.target",
        "extras",
    ):
        assert key in joined, joined


@pytest.mark.parametrize(
    ("text", "key", "suggestion"),
    [
        (EXAMPLE.replace("partner_uuid =", "partner_uid ="), "connections.ledger.partner_uid", "partner_uuid"),
        (
            EXAMPLE.replace("requests_per_second", "request_per_second"),
            "connections.ledger.request_per_second",
            "requests_per_second",
        ),
        (EXAMPLE.replace("truncate = false", "truncat = false"), "pipelines.books_to_ledger.truncat", "truncate"),
        (EXAMPLE.replace("[broker]", "[brokers]"), "brokers", "broker"),
    ],
)
def test_given_misspelt_key_when_loaded_then_the_error_names_it_and_suggests_the_likely_one(
    tmp_path: Path, text: str, key: str, suggestion: str
) -> None:
    message = _error(tmp_path, text)

    line = next(line for line in message.splitlines() if f": {key}:" in line)
    assert f"did you mean `{suggestion}`?" in line, line


def test_given_empty_environment_variable_when_loaded_then_error_names_the_variable(tmp_path: Path) -> None:
    message = _error(tmp_path, EXAMPLE, {**ENV, "THREDFI_API_KEY": ""})

    assert "connections.ledger.api_key" in message
    assert "THREDFI_API_KEY is empty" in message
    assert len(message.splitlines()) == 1, message


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("api.bigcapital.com", "is not an http(s) URL"),
        ("ftp://api.bigcapital.com", "is not an http(s) URL"),
        ("https://", "has no host"),
        ("https:///api", "has no host"),
    ],
)
def test_given_bad_base_url_when_loaded_then_error_names_the_connection_key(
    tmp_path: Path, base_url: str, problem: str
) -> None:
    message = _error(tmp_path, EXAMPLE.replace('"https://api.bigcapital.com"', f'"{base_url}"'))

    assert f"connections.books.base_url: {base_url!r} {problem}" in message, message


@pytest.mark.parametrize("expression", ["0 0 1 * 1", "0 0 L * *", "*/15 * * *", "0 0 * * 9"])
def test_given_cron_that_beat_refuses_when_loaded_then_the_config_refuses_it_too(
    tmp_path: Path, expression: str
) -> None:
    from worker.schedule import parse_cron

    with pytest.raises(ConfigError):
        parse_cron(expression, where="x")  # what beat does with it
    message = _error(tmp_path, EXAMPLE.replace('"*/15 * * * *"', f'"{expression}"'))
    assert "pipelines.books_to_ledger.schedule" in message


@pytest.mark.parametrize("expression", ["*/15 * * * *", "@hourly", "0 9 * * 1-5", "0 0 1 * *", "0 0 * * 7"])
def test_given_cron_beat_runs_when_loaded_then_the_config_accepts_it(tmp_path: Path, expression: str) -> None:
    config = load_config(_write(tmp_path, EXAMPLE.replace('"*/15 * * * *"', f'"{expression}"')), environ=ENV)

    assert config.pipeline("books_to_ledger").schedule == expression


def test_given_config_loaded_when_an_api_echoes_a_key_then_the_key_is_remembered_for_scrubbing(
    tmp_path: Path,
) -> None:
    from connectors.secrets import forget_all, scrub

    forget_all()
    load_config(_write(tmp_path, EXAMPLE), environ=ENV)
    try:
        for secret in (ENV["BIGCAPITAL_API_KEY"], ENV["THREDFI_API_KEY"], ENV["PIRIOD_API_TOKEN"]):
            assert scrub(f"the key {secret} is invalid") == "the key *** is invalid"
    finally:
        forget_all()
