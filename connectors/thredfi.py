"""Thredfi customers (connector-apis.md, section 2).

A data sheet plus what the base cannot know about:

- an OAuth2 client-credentials token (HTTP Basic with the partner UUID and
  key), exchanged by default for a token limited to the business (the
  authentication guide says customer routes need one);
- the business id is part of every path, and every path ends with a slash;
- ``external_id`` is an identity slot: a create that repeats one answers 200
  with the existing record (or, per the error guide, 409), so creates are
  safe to retry;
- one name field per kind (``company_name`` or ``individual_name``), archive
  through ``POST .../archive/``.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any, Literal

import httpx
from pydantic import SecretStr
from typing_extensions import override

from connectors.auth import TokenAuth
from connectors.base import (
    ConnectionSettings,
    Connector,
    CreateResult,
    FieldMappingError,
    Listing,
    TargetSpec,
)
from connectors.mapping import country_alpha2, split_name
from connectors.model import Customer, RemoteCustomer, clean
from connectors.pagination import PageNumberPaginator
from connectors.ratelimit import RateLimiter

#: canonical field → Thredfi field, for plain text fields (same name both ways).
_TEXT: Mapping[str, str] = {
    "email": "email",
    "phone": "office_phone",
    "mobile": "mobile_phone",
    "address_line1": "address_line1",
    "address_line2": "address_line2",
    "city": "city",
    "state": "state_county",
    "postal_code": "postal_code",
    "tax_id": "vat_number",
    "notes": "notes",
}
_KEPT = frozenset({*_TEXT, "company_name", "country"})


class ThredfiSettings(ConnectionSettings):
    """A Thredfi connection: partner credentials and the business to sync.

    Attributes:
        partner_uuid: the partner id, the Basic-auth user of the token endpoint.
        api_key: the partner key, the Basic-auth password.
        business_id: the business (UUID) whose customers are synced.
        use_business_token: exchange the partner token for one limited to the
            business (the default). The docs disagree on which token customer
            routes need; a business token works under both readings, a partner
            token only under the endpoint pages' (``false`` to use it anyway).
    """

    system: Literal["thredfi"]
    partner_uuid: str
    api_key: SecretStr
    business_id: str
    use_business_token: bool = True


class _PartnerToken(TokenAuth):
    """The partner token: client credentials over HTTP Basic."""

    def __init__(self, url: str, settings: ThredfiSettings, **options: Any) -> None:
        super().__init__(**options)
        self._url = url
        pair = f"{settings.partner_uuid}:{settings.api_key.get_secret_value()}".encode()
        self._basic = f"Basic {base64.b64encode(pair).decode()}"
        # Requests an auth flow makes get no timeout from the client: give them one.
        self.timeout = httpx.Timeout(settings.timeout_s).as_dict()

    @override
    def token_request(self) -> httpx.Request:
        return httpx.Request(
            "POST",
            self._url,
            headers={"Authorization": self._basic},
            data={"grant_type": "client_credentials"},
            extensions={"timeout": self.timeout},
        )


class _BusinessToken(TokenAuth):
    """A token for one business, asked for with (and through) the partner token flow."""

    def __init__(self, url: str, partner: _PartnerToken, **options: Any) -> None:
        super().__init__(**options)
        self._url = url
        self._partner = partner

    @override
    def token_request(self) -> httpx.Request:
        return httpx.Request("POST", self._url, extensions={"timeout": self._partner.timeout})

    @override
    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        # Our own token request goes through the partner flow, which renews the
        # partner token as it must; every other request passes straight through.
        # Both flows are closed explicitly: an abandoned one would keep its lock.
        flow = super().async_auth_flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                if outgoing.url != self._url:
                    response = yield outgoing
                else:
                    inner = self._partner.async_auth_flow(outgoing)
                    try:
                        sent = await inner.__anext__()
                        while True:
                            response = yield sent
                            try:
                                sent = await inner.asend(response)
                            except StopAsyncIteration:
                                break
                    finally:
                        await inner.aclose()
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            return
        finally:
            await flow.aclose()


class ThredfiConnector(Connector[ThredfiSettings]):
    """Thredfi's business customers: OAuth2 tokens, page numbers, ``external_id``.

    Args:
        name: the connection's name in the config file.
        settings: the connection's validated settings.
        transport: an httpx transport (tests pass ``httpx.ASGITransport``).
        limiter: shared requests-per-second limiter, when configured.
        clock: monotonic seconds for token expiry; a seam for tests.
    """

    system = "thredfi"
    settings_model = ThredfiSettings
    spec = TargetSpec(
        fields=_KEPT,
        # Lengths are not documented; 255 is what the sandbox (a DRF CharField default) keeps.
        limits={name: 255 for name in (_KEPT | {"name"}) - {"notes", "country"}},
        identity_slot=True,
        archive=True,
        formats={"country": (r"[A-Z]{2}", "an ISO 3166-1 alpha-2 country code")},
        checks={"email": "email"},  # Thredfi refuses an invalid e-mail with a 400
    )
    paginator = PageNumberPaginator(items_key="results", page_size=100, total_pages_path=("page_info", "total_pages"))
    # The doc does not say PUT or PATCH: PATCH is partial, so a field we do not
    # send can never be reset by a PUT that expected it.
    update_method = "PATCH"
    create_is_idempotent = True  # a repeated external_id answers 200 with the existing record
    vendor_fields = {
        **{vendor: canonical for canonical, vendor in _TEXT.items()},
        "company_name": "name",  # we write the canonical name into whichever name field
        "individual_name": "name",
        "country": "country",
        "status": "active",
    }

    def __init__(
        self,
        name: str,
        settings: ThredfiSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name, settings, transport=transport, limiter=limiter)
        self._clock = clock

    create_path = "/v1/platform/businesses/{business_id}/customers/"
    item_path = "/v1/platform/businesses/{business_id}/customers/{id}/"

    @override
    def path_params(self) -> Mapping[str, str]:
        return {"business_id": self.settings.business_id}

    @property
    @override
    def tenant(self) -> str:
        return self.settings.business_id

    @override
    def auth(self) -> httpx.Auth:
        settings = self.settings
        root = f"{settings.base_url.rstrip('/')}/v1/platform"
        partner = _PartnerToken(f"{root}/oauth2/token/", settings, clock=self._clock)
        if not settings.use_business_token:
            return partner
        return _BusinessToken(f"{root}/{settings.business_id}/oauth2/token/", partner, clock=self._clock)

    @override
    def listings(self) -> Sequence[Listing]:
        return [Listing(self.collection, {"include_archived": "true"})]

    @override
    def external_id_of(self, raw: Mapping[str, Any]) -> str | None:
        return clean(raw.get("external_id"))

    @override
    def to_canonical(self, raw: Mapping[str, Any]) -> Customer:
        company, person = clean(raw.get("company_name"), "company_name"), clean(raw.get("individual_name"), "name")
        # Thredfi's own display name prefers the company; so do we when both are set.
        name = company or person or clean(raw.get("display_name"))
        if name is None:
            raise FieldMappingError("name", "thredfi record has no company_name or individual_name")
        first, last = split_name(person) if company is None else (None, None)
        status = clean(raw.get("status"))
        return Customer(
            kind="company" if company or not person else "individual",
            name=name,
            company_name=company,
            first_name=first,
            last_name=last,
            country=country_alpha2(raw.get("country"), system=self.system),
            active=status.upper() != "ARCHIVED" if status else raw.get("is_archived") is not True,
            **{canonical: clean(raw.get(vendor), canonical) for canonical, vendor in _TEXT.items()},
        )

    @override
    def shape(self, customer: Customer, *, truncate: bool = False) -> Customer:
        # Thredfi holds one name: a company's is its company_name, a person's is
        # split into first and last on read. Shape the same way so a round trip
        # (and its fingerprint) is stable.
        shaped = super().shape(customer, truncate=truncate)
        if shaped.kind == "company":
            parts = {"company_name": shaped.name, "first_name": None, "last_name": None}
        else:
            first, last = split_name(shaped.name)
            parts = {"company_name": None, "first_name": first, "last_name": last}
        return shaped.model_copy(update=parts)

    @override
    def to_payload(self, customer: Customer, external_id: str, *, create: bool) -> dict[str, Any]:
        company = customer.kind == "company"
        body: dict[str, Any] = {
            "company_name": customer.name if company else None,
            "individual_name": None if company else customer.name,
            **{vendor: getattr(customer, canonical) for canonical, vendor in _TEXT.items()},
            "country": customer.country,
        }
        if not create:
            return body  # a PATCH sends every kept field: null clears it
        # status is not sent: the engine creates active and archives afterwards.
        return {"external_id": external_id, **{k: v for k, v in body.items() if v is not None}}

    @override
    async def create(self, customer: Customer, external_id: str) -> CreateResult:
        body = self.to_payload(customer, external_id, create=True)
        response = await self.request("POST", self.collection, json=body, op="create", ok=frozenset({409}))
        if response.status_code != 409:
            return CreateResult(self.read(response.json()), existed=response.status_code == 200)
        # The error guide lists a 409 for a duplicate external_id: adopt the holder.
        found = await self.find_by_external_id(external_id)
        if not found:
            raise self.classify(response, "create")
        return CreateResult(found[0], existed=True)

    @override
    async def find_by_external_id(self, external_id: str) -> list[RemoteCustomer] | None:
        params = {"external_id": external_id, "include_archived": "true"}
        response = await self.request("GET", self.collection, params=params, op="find")
        found = [self.read(raw) for raw in self.paginator.records(response.json())]
        # Exact matches only, should a server ever ignore the filter.
        return [remote for remote in found if remote.external_id == external_id]

    @override
    async def set_active(self, remote_id: str, active: bool) -> None:
        path = self.record_path(remote_id)
        if active:
            # Unarchive is not documented; the create body takes ``status``, so an
            # update to "active" is assumed (connector-apis.md 2.4).
            body = {"status": "active"}
            await self.request(self.update_method, path, json=body, op="unarchive")
        else:  # archiving an archived customer is a harmless no-op: safe to retry
            await self.request("POST", path + "archive/", op="archive")


__all__ = ["ThredfiConnector", "ThredfiSettings"]
