"""The request loop against servers that misbehave: foreign links, bodies quoting secrets or
personal data, answers that are not JSON (issues 9.3, 9.4, 9.6 and 8.1)."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stamina
from starlette.requests import Request
from starlette.responses import Response
from structlog.testing import capture_logs

from connectors import secrets
from connectors.auth import HeaderAuth, TokenAuth, restrict_to_origin
from connectors.base import Connector
from connectors.bigcapital import BigcapitalConnector, BigcapitalSettings
from connectors.errors import AuthError, FatalError, NotFoundError, RejectedError, RetriableError
from connectors.model import Customer
from connectors.piriod import PiriodConnector, PiriodSettings
from connectors.thredfi import ThredfiConnector, ThredfiSettings
from tests.connectors.http_fakes import Hosts, Seen, app, bigcapital_record, json

PIRIOD_TOKEN = "sk_live_piriod_0123456789abcdef"
BIGCAPITAL_KEY = "bc_live_0123456789abcdef0123456789abcdef"
THREDFI_KEY = "thred_sk_live_0123456789abcdef"
ISSUED_TOKEN = "tok_issued_9f8e7d6c5b4a39281706"


@pytest.fixture(autouse=True)
def _few_retries() -> Iterator[None]:
    with stamina.set_testing(True, attempts=3):
        yield


@pytest.fixture(autouse=True)
def _fresh_secrets() -> Iterator[None]:
    secrets.forget_all()
    yield
    secrets.forget_all()


def piriod(transport: httpx.AsyncBaseTransport, base_url: str = "http://piriod.test") -> PiriodConnector:
    settings = PiriodSettings(system="piriod", base_url=base_url, api_token=PIRIOD_TOKEN, workspace="acc_1")
    return PiriodConnector("billing", settings, transport=transport)


def bigcapital(transport: httpx.AsyncBaseTransport, **changes: Any) -> BigcapitalConnector:
    values: dict[str, Any] = {"system": "bigcapital", "base_url": "http://books.test", "api_key": BIGCAPITAL_KEY}
    return BigcapitalConnector("books", BigcapitalSettings(**{**values, **changes}), transport=transport)


def a_customer() -> Customer:
    return Customer(name="Ada Lovelace", email="ada@private.example", currency="USD")


async def pull(connector: Connector) -> list[Any]:
    return [remote async for page in connector.pages() for remote in page]


# -- 9.3: credentials only to their host -------------------------------------------------


def _piriod_page(next_link: str) -> dict[str, Any]:
    record = {"id": "c1", "name": "Acme", "address": "Av. 1", "country": {"id": "CL"}, "reference": None}
    return {"count": 2, "next": next_link, "previous": None, "results": [record]}


@pytest.mark.parametrize(
    "link",
    [
        "http://evil.test/customers/?page=2",
        "https://piriod.test/customers/?page=2",  # another scheme
        "http://piriod.test:8080/customers/?page=2",  # another port
    ],
)
async def test_given_next_link_to_another_origin_when_paged_then_run_fails_and_no_credentials_leave(link: str) -> None:
    seen_evil = Seen()

    async def listing(request: Request) -> Response:
        return json(_piriod_page(link))

    async def evil(request: Request) -> Response:
        return json({"count": 1, "next": None, "results": []})

    hosts = Hosts({"piriod.test": app(listing), "evil.test": app(evil, seen_evil)})
    async with piriod(hosts) as connector:
        with pytest.raises(FatalError) as raised:
            await pull(connector)

    message = str(raised.value)
    assert "billing (piriod)" in message
    assert httpx.URL(link).host in message
    assert PIRIOD_TOKEN not in message
    assert "page=2" not in message  # the origin only, never the query
    assert seen_evil.requests == []
    assert [str(r.url).split("?")[0] for r in hosts.sent] == ["http://piriod.test/customers/"]
    assert connector.scan.complete is False


async def test_given_same_origin_next_link_when_paged_then_followed() -> None:
    async def listing(request: Request) -> Response:
        if request.query_params.get("page") == "2":
            return json({"count": 1, "next": None, "results": []})
        page = _piriod_page("http://piriod.test:80/customers/?page=2")  # the default port spelled out
        page["count"] = 1
        return json(page)

    hosts = Hosts({"piriod.test": app(listing)})
    async with piriod(hosts) as connector:
        records = await pull(connector)
    assert len(records) == 1
    assert hosts.hosts() == ["piriod.test", "piriod.test"]


async def test_given_auth_bound_to_origin_when_request_goes_elsewhere_then_no_credentials_attached() -> None:
    class Token(TokenAuth):
        def token_request(self) -> httpx.Request:
            return httpx.Request("POST", "http://api.test/token")

    seen = Seen()

    async def anything(request: Request) -> Response:
        if request.url.path == "/token":
            return json({"access_token": ISSUED_TOKEN, "expires_in": 3600})
        return json({})

    hosts = Hosts({"api.test": app(anything, seen), "evil.test": app(anything, seen)})
    for auth in (HeaderAuth({"Authorization": f"Bearer {BIGCAPITAL_KEY}"}), Token()):
        restrict_to_origin(auth, "http://api.test/v1")
        seen.requests.clear()
        async with httpx.AsyncClient(auth=auth, transport=hosts) as client:
            await client.get("http://evil.test/steal")
            await client.get("http://api.test/v1/ok")
        evil = [headers for _, path, headers in seen.requests if path == "/steal"]
        ours = [headers for _, path, headers in seen.requests if path == "/v1/ok"]
        assert "authorization" not in evil[0]
        assert "authorization" in ours[0]


# -- 8.1: Bigcapital's class-validator objects and business rules ------------------------

#: The recorded 400 to a create with a bad e-mail; target and value are the customer's data.
CLASS_VALIDATOR_400 = {
    "message": [
        {
            "target": {
                "customerType": "business",
                "displayName": "Bad Mail",
                "email": "not-an-email",
                "currencyCode": "USD",
            },
            "value": "not-an-email",
            "property": "email",
            "children": [],
            "constraints": {"isEmail": "email must be an email"},
        }
    ],
    "error": "Bad Request",
    "statusCode": 400,
}


async def test_given_class_validator_refusal_when_create_then_field_named_and_no_personal_data_anywhere() -> None:
    async def refuse(request: Request) -> Response:
        return json(CLASS_VALIDATOR_400, 400)

    async with bigcapital(Hosts({"books.test": app(refuse, bigcapital=True)})) as connector:
        with capture_logs() as events, pytest.raises(RejectedError) as raised:
            await connector.create(a_customer(), "piriod:acc_1:c1")

    error = raised.value
    assert error.field == "email"
    assert "email must be an email" in str(error)
    for personal in ("not-an-email", "Bad Mail", "customerType", "target"):
        assert personal not in str(error)
        assert personal not in repr(events)


async def test_given_nested_class_validator_children_when_parsed_then_property_path_and_constraints_only() -> None:
    body = {
        "message": [
            {
                "target": {"secretName": "Grace Hopper"},
                "value": {"city": "Arlington"},
                "property": "billingAddress",
                "children": [
                    {
                        "target": {"city": "Arlington"},
                        "value": "Arlington",
                        "property": "city",
                        "children": [],
                        "constraints": {"maxLength": "city must be shorter than or equal to 5 characters"},
                    }
                ],
            }
        ],
        "statusCode": 400,
    }
    async with bigcapital(Hosts({}), organization_id="3b2ozldmpmx52sv9a") as connector:
        problems = connector.parse_error(httpx.Response(400, json=body))
    assert problems == [("billingAddress.city", "city must be shorter than or equal to 5 characters")]
    assert "Arlington" not in repr(problems)
    assert "Grace" not in repr(problems)


async def test_given_business_rule_without_message_when_classified_then_type_alone() -> None:
    body = {"errors": [{"statusCode": 400, "type": "CONTACT_ALREADY_INACTIVE", "message": None}]}
    async with bigcapital(Hosts({}), organization_id="3b2ozldmpmx52sv9a") as connector:
        error = connector.classify(httpx.Response(400, json=body), "inactivate")
    assert str(error).endswith(": CONTACT_ALREADY_INACTIVE")
    assert "None" not in str(error)


async def test_given_already_inactive_with_null_message_when_inactivated_then_success() -> None:
    async def already(request: Request) -> Response:
        return json({"errors": [{"statusCode": 400, "type": "CONTACT_ALREADY_INACTIVE", "message": None}]}, 400)

    async with bigcapital(Hosts({"books.test": app(already, bigcapital=True)})) as connector:
        await connector.set_active("1", False)  # no exception: already in the wanted state


async def test_given_recorded_404_when_get_then_not_found_with_vendor_word() -> None:
    async def missing(request: Request) -> Response:
        if request.url.path.startswith("/api/customers/"):
            return json({"statusCode": 404, "message": "NotFoundError"}, 404)
        return json({"customers": [], "pagination": {"total": 0, "page": 1, "page_size": 100}})

    async with bigcapital(Hosts({"books.test": app(missing, bigcapital=True)})) as connector:
        await connector.check()  # the connection has answered once
        with pytest.raises(NotFoundError) as raised:
            await connector.get("999")
    assert str(raised.value) == "bigcapital has no such record (get, HTTP 404): NotFoundError"


# -- 9.4: secrets in error bodies ---------------------------------------------------------


def thredfi(transport: httpx.AsyncBaseTransport) -> ThredfiConnector:
    settings = ThredfiSettings(
        system="thredfi",
        base_url="http://thredfi.test",
        partner_uuid="partner-1",
        api_key=THREDFI_KEY,
        business_id="biz-1",
    )
    return ThredfiConnector("ledger", settings, transport=transport)


async def test_given_error_body_quoting_key_and_issued_token_when_create_then_message_holds_neither() -> None:
    async def server(request: Request) -> Response:
        if request.url.path.endswith("/oauth2/token/"):
            return json({"access_token": ISSUED_TOKEN, "token_type": "Bearer", "expires_in": 3600})
        # A server that echoes what it got: the key it was configured with and the bearer token.
        return json(
            {
                "code": "validation_error",
                "message": f"bad request from key {THREDFI_KEY}",
                "details": {"email": [f"token {ISSUED_TOKEN} may not write email"]},
            },
            400,
        )

    async with thredfi(Hosts({"thredfi.test": app(server)})) as connector:
        with pytest.raises(RejectedError) as raised:
            await connector.create(Customer(name="Acme"), "bigcapital:org:1")

    message = str(raised.value)
    assert "may not write email" in message  # the vendor's reason is kept...
    assert THREDFI_KEY not in message
    assert ISSUED_TOKEN not in message
    assert secrets.scrub(f"x {ISSUED_TOKEN} {THREDFI_KEY}") == "x *** ***"


def test_given_connector_built_when_settings_hold_secrets_then_they_are_remembered() -> None:
    bigcapital(Hosts({}), base_url="http://user:pass-word-1@books.test")
    assert secrets.scrub(f"{BIGCAPITAL_KEY} / pass-word-1") == "*** / ***"


def test_given_a_worker_renewing_tokens_for_weeks_when_scrubbing_then_the_newest_tokens_and_keys_stay_masked() -> None:
    secrets.remember(THREDFI_KEY)
    issued = [f"tok_{n:06d}_issued_to_us" for n in range(secrets.TOKENS_KEPT * 4)]
    for token in issued:
        secrets.remember(token, issued=True)
    newest, oldest = issued[-secrets.TOKENS_KEPT :], issued[0]
    assert secrets.scrub(f"{newest[0]} {newest[-1]} {THREDFI_KEY}") == "*** *** ***"
    assert secrets.scrub(oldest) == oldest, "every token ever issued is still in each scrub's pattern"
    # A configured secret is never evicted, even when a token endpoint issues the same value.
    secrets.remember(THREDFI_KEY, issued=True)
    for token in issued:
        secrets.remember(token + "_again", issued=True)
    assert secrets.scrub(THREDFI_KEY) == "***"


# -- 9.6: garbage contained ---------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>502 Bad Gateway</body></html>",
        b"[" * 100_000 + b"]" * 100_000,  # deep enough for a RecursionError in the parser
    ],
    ids=["html", "deeply-nested"],
)
async def test_given_create_answered_with_garbage_when_created_then_deferred_and_not_resent(body: bytes) -> None:
    seen = Seen()

    async def garbage(request: Request) -> Response:
        return Response(body, status_code=201, media_type="application/json")

    async with bigcapital(Hosts({"books.test": app(garbage, seen, bigcapital=True)})) as connector:
        with pytest.raises(RetriableError) as raised:
            await connector.create(a_customer(), "piriod:acc_1:c1")

    assert str(raised.value) == "bigcapital answered the create with a body that is not JSON (HTTP 201)"
    assert seen.paths("POST") == ["/api/customers"]  # may have been applied: never sent twice
    assert not isinstance(raised.value.__cause__, httpx.ConnectError | httpx.ConnectTimeout)


async def test_given_create_answered_without_id_when_created_then_error_and_no_write_to_collection() -> None:
    seen = Seen()

    async def no_id(request: Request) -> Response:
        return json({"message": "The customer has been created successfully."}, 201)

    async with bigcapital(Hosts({"books.test": app(no_id, seen, bigcapital=True)})) as connector:
        with pytest.raises(RetriableError, match="answered the create without an id"):
            await connector.create(a_customer(), "piriod:acc_1:c1")
    assert seen.paths("PUT") == []
    assert [p for p in seen.paths("GET") if p.startswith("/api/customers")] == []  # no read of id "?"
    assert seen.paths("POST") == ["/api/customers"]


async def test_given_token_endpoint_answers_garbage_when_listing_then_clear_error_not_traceback() -> None:
    async def server(request: Request) -> Response:
        if request.url.path.endswith("/oauth2/token/"):
            return Response(b"<html>maintenance</html>", media_type="text/html")
        return json({"count": 0, "page_info": {"total_pages": 1}, "results": []})

    async with thredfi(Hosts({"thredfi.test": app(server)})) as connector:
        with pytest.raises((RetriableError, AuthError)) as raised:
            await pull(connector)
    assert "token endpoint answered a body that is not JSON" in str(raised.value)
    assert str(raised.value).startswith("thredfi list:")


async def test_given_one_garbled_list_page_when_paged_then_retried_and_walk_completes() -> None:
    calls = {"n": 0}

    async def flaky(request: Request) -> Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return Response(b'{"customers": [', media_type="application/json")  # cut short
        records = [bigcapital_record(1)] if request.query_params.get("inactiveMode") == "false" else []
        return json({"customers": records, "pagination": {"total": len(records), "page": 1, "page_size": 100}})

    async with bigcapital(Hosts({"books.test": app(flaky, bigcapital=True)})) as connector:
        records = await pull(connector)
    assert [r.id for r in records] == ["1"]
    assert connector.scan.complete is True


async def test_given_list_page_always_garbled_when_paged_then_bounded_retries_then_error() -> None:
    seen = Seen()

    async def broken(request: Request) -> Response:
        return Response(b"not json at all", media_type="text/plain")

    async with bigcapital(Hosts({"books.test": app(broken, seen, bigcapital=True)})) as connector:
        with pytest.raises(RetriableError, match="answered the list with a body that is not JSON"):
            await pull(connector)
    assert len(seen.paths("GET")) == 3  # the test's retry budget, then the run gives up
    assert connector.scan.complete is False


def test_given_recorded_400_body_when_serialised_then_fixture_is_the_recording() -> None:
    # Keeps the fixture honest: this is the byte-for-byte body of "Create: invalid email".
    recorded = (
        '{"message":[{"target":{"customerType":"business","displayName":"Bad Mail","email":"not-an-email",'
        '"currencyCode":"USD"},"value":"not-an-email","property":"email","children":[],'
        '"constraints":{"isEmail":"email must be an email"}}],"error":"Bad Request","statusCode":400}'
    )
    assert jsonlib.loads(recorded) == CLASS_VALIDATOR_400


def test_given_a_body_the_request_loop_parsed_when_a_connector_reads_it_then_not_parsed_again() -> None:
    from connectors.http import parse, parsed

    answered = httpx.Response(201, json={"id": 7, "name": "Acme"})
    first = parse(answered, "unreadable")

    assert parsed(answered) is first  # the loop's parse, not a second one
    fresh = httpx.Response(200, json={"id": 8})
    assert parsed(fresh) == {"id": 8}  # never parsed by the loop: read as httpx reads it
    with pytest.raises(ValueError):
        parsed(httpx.Response(200, content=b"not json"))
