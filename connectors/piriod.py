"""Piriod: Chilean billing and collections (connector-apis.md, section 3).

Where Piriod and the canonical customer differ:

- no person/company split: records read back as companies without name
  parts, while ``shape`` keeps the source's ``kind`` (the base always does);
- ``address`` is one line of at most 64 characters and there is no city:
  ``shape`` folds line 2 into line 1 (``"line1, line2"``) and drops the city;
- ``country`` is written as its alpha-2 id and read as an object; Piriod files
  a customer without one under the account's country, and so does ``shape``;
- ``state`` is written as an integer id and read as an object (see
  :meth:`PiriodConnector._load_states`);
- the identity is in ``reference`` (at most 64 characters) and always in
  ``metadata.external_id``; ``notes`` live in ``metadata.notes``. A PATCH
  replaces ``metadata`` wholesale: keys added by hand are dropped on update,
  and an update that does not speak for the notes leaves it out;
- a missing currency is defaulted by Piriod from the country, and so does
  ``shape``; a set one cannot be cleared (Piriod refuses a null currency).
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import httpx
from pydantic import SecretStr
from typing_extensions import override

from connectors.auth import HeaderAuth
from connectors.base import (
    ConnectionSettings,
    Connector,
    CreateResult,
    FieldMappingError,
    Listing,
    TargetSpec,
)
from connectors.mapping import country_alpha2
from connectors.model import Customer, FieldProblem, RemoteCustomer, clean
from connectors.pagination import NextLinkPaginator
from connectors.ratelimit import RateLimiter

#: Countries whose tax agency Piriod integrates with: RUT, RFC, NIT.
REGULATED_COUNTRIES = frozenset({"CL", "MX", "CO"})
#: ``reference`` holds at most this many characters; longer ids go to metadata only.
REFERENCE_LIMIT = 64
#: The currency Piriod files a customer without one under: its country's own.
_COUNTRY_CURRENCY = {"CL": "CLP", "MX": "MXN", "CO": "COP", "PE": "PEN", "AR": "ARS", "BR": "BRL",
                     "UY": "UYU", "US": "USD", "GB": "GBP", "CA": "CAD"}  # fmt: skip


#: what our external_ids look like: ``system:tenant:id``.
_OURS = re.compile(r"(bigcapital|thredfi|piriod|timbrix):[^:\s]+:\S+")


class PiriodSettings(ConnectionSettings):
    """A Piriod workspace."""

    system: Literal["piriod"]
    api_token: SecretStr
    workspace: str
    test_mode: bool = False
    account_country: str = "CL"
    """The account's own country: decides when ``tax_id`` is required."""


class PiriodConnector(Connector[PiriodSettings]):
    """Customers of one Piriod workspace, live or test data set."""

    system = "piriod"
    settings_model = PiriodSettings
    # fmt: off
    spec = TargetSpec(
        fields=frozenset({"name", "email", "phone", "website", "address_line1", "state",
                          "postal_code", "country", "tax_id", "currency", "notes"}),
        required=frozenset({"name", "address_line1"}),
        # The documented limits, and DRF's defaults for an EmailField (254) and a URLField (200).
        limits={"name": 100, "address_line1": 64, "phone": 16, "postal_code": 16, "tax_id": 32,
                "email": 254, "website": 200},
        checks={"email": "email", "website": "url"},  # DRF's EmailField and URLField refuse others
        identity_slot=True,
    )
    # fmt: on
    paginator = NextLinkPaginator(page_size=100)  # Piriod's maximum
    create_path = "/customers/"
    item_path = "/customers/{id}/"
    update_method = "PATCH"
    can_filter_since = True  # ``created__gte``; there is no filter on ``updated``
    vendor_fields: ClassVar[Mapping[str, str]] = {
        "address": "address_line1",
        "zip_code": "postal_code",
        "metadata.notes": "notes",
    }

    def __init__(
        self,
        name: str,
        settings: PiriodSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        super().__init__(name, settings, transport=transport, limiter=limiter)
        self._states: dict[str, dict[str, int]] = {}
        self._states_lock = asyncio.Lock()

    @property
    def tenant(self) -> str:
        """The workspace; test mode is a separate data set, hence its own tenant."""
        workspace = self.settings.workspace
        return f"{workspace}:test" if self.settings.test_mode else workspace

    def auth(self) -> httpx.Auth:
        """Token, workspace and test-mode headers on every call."""
        return HeaderAuth(
            {
                "Authorization": f"Token {self.settings.api_token.get_secret_value()}",
                "x-simple-workspace": self.settings.workspace,
                "x-piriod-test-mode": "true" if self.settings.test_mode else "false",
            }
        )

    def listings(self) -> Sequence[Listing]:
        """One listing holds every status.

        Oldest first: a record created during the walk lands on the last page
        instead of shifting every page after it (and being read twice).
        """
        params: dict[str, str | int] = {"ordering": "created"}
        if self.since is not None:
            params["created__gte"] = self.since.isoformat()
        return [Listing("/customers/", params)]

    def external_id_of(self, raw: Mapping[str, Any]) -> str | None:
        """``metadata.external_id`` (never cut), else ``reference`` when it is one of ours.

        Piriod users fill ``reference`` themselves too (an order number): only a
        value shaped like our ``system:tenant:id`` is taken as an identity.
        """
        metadata = raw.get("metadata")
        held = clean(metadata.get("external_id") if isinstance(metadata, Mapping) else None)
        reference = clean(raw.get("reference"))
        if held is None and reference is not None and _OURS.fullmatch(reference):
            return reference
        return held

    def to_canonical(self, raw: Mapping[str, Any]) -> Customer:
        """Map a Piriod customer (country and state are objects on read)."""
        country, state = raw.get("country"), raw.get("state")
        metadata, name = raw.get("metadata"), clean(raw.get("name"), "name")
        if name is None:
            raise FieldMappingError("name", "the piriod record has no name")
        return Customer(
            kind="company",  # Piriod cannot tell people from companies
            name=name,
            email=clean(raw.get("email"), "email"),
            phone=clean(raw.get("phone"), "phone"),
            website=clean(raw.get("website"), "website"),
            address_line1=clean(raw.get("address"), "address_line1"),
            state=clean(state.get("name")) if isinstance(state, Mapping) else None,
            postal_code=clean(raw.get("zip_code"), "postal_code"),
            country=country_alpha2(country.get("id") if isinstance(country, Mapping) else country, system=self.system),
            tax_id=clean(raw.get("tax_id"), "tax_id"),
            currency=clean(raw.get("currency"), "currency"),
            notes=clean(metadata.get("notes")) if isinstance(metadata, Mapping) else None,
            active=raw.get("status") != "archived",  # "pending" is not archived: active
        )

    @override
    def shape(self, customer: Customer, *, truncate: bool = False) -> Customer:
        """Fold ``address_line2`` into the one address line; default the country and currency."""
        lines = [p for p in (customer.address_line1, customer.address_line2) if p]
        country = customer.country or self.settings.account_country
        currency = customer.currency or _COUNTRY_CURRENCY.get(country)
        folded = customer.model_copy(
            update={"address_line1": ", ".join(lines) or None, "country": country, "currency": currency}
        )
        return super().shape(folded, truncate=truncate)

    @override
    def extra_problems(self, shaped: Customer) -> list[FieldProblem]:
        """Piriod needs a tax id for customers of the account's own, regulated, country."""
        country = shaped.country
        if shaped.tax_id or country not in REGULATED_COUNTRIES:
            return []
        if country != self.settings.account_country:
            return []
        reason = f"required by piriod for {country} customers, missing in the source record"
        return [FieldProblem("tax_id", reason)]

    def to_payload(self, customer: Customer, external_id: str, *, create: bool) -> dict[str, Any]:
        """Map to Piriod's write body; the state catalog must be loaded (``create``)."""
        shaped = self.shape(customer)
        country = shaped.country or self.settings.account_country
        metadata = {"external_id": external_id}
        if shaped.notes:  # metadata values cannot be null: a missing key clears it
            metadata["notes"] = shaped.notes
        body: dict[str, Any] = {
            "name": shaped.name,
            "address": shaped.address_line1,
            "country": country,
            "state": self._state_id(country, shaped.state),
            "email": shaped.email,
            "phone": shaped.phone,
            "website": shaped.website,
            "zip_code": shaped.postal_code,
            "tax_id": shaped.tax_id,
            "currency": shaped.currency,
            "reference": external_id if len(external_id) <= REFERENCE_LIMIT else None,
            "metadata": metadata,
        }
        # Nulls clear fields on update; a create leaves them out. Currency is
        # never null: Piriod refuses it and defaults it from the country.
        return {k: v for k, v in body.items() if v is not None or not (create or k == "currency")}

    # -- quirks ------------------------------------------------------------

    @override
    async def create(self, customer: Customer, external_id: str) -> CreateResult:
        """Resolve the state's id, then create, without blind retries.

        Piriod does not deduplicate on ``reference`` or ``metadata``: a POST
        whose answer was lost may have created the record, so only a request
        that never reached Piriod is retried; the engine looks the identity
        up (:meth:`find_by_external_id`) before creating again.
        """
        await self._load_states(customer)
        body = self.to_payload(customer, external_id, create=True)
        response = await self.request("POST", self.collection, json=body, op="create", idempotent=False)
        return CreateResult(self.read(response.json()))

    @override
    async def update(
        self, remote_id: str, customer: Customer, external_id: str, *, fields: frozenset[str] | None = None
    ) -> RemoteCustomer | None:
        """Resolve the state's id, then PATCH the kept fields."""
        await self._load_states(customer)
        return await super().update(remote_id, customer, external_id, fields=fields)

    @override
    def only(self, body: dict[str, Any], fields: frozenset[str] | None) -> dict[str, Any]:
        """Leave ``metadata`` out when the notes are not ours to write.

        A PATCH replaces ``metadata`` wholesale, so sending it would clear notes
        the source does not keep; the identity in it was written at creation.
        """
        kept = super().only(body, fields)
        if fields is not None and "notes" not in fields:
            kept.pop("metadata", None)
        return kept

    @override
    async def set_active(self, remote_id: str, active: bool) -> None:
        """Archiving is a status change; there is no dedicated endpoint."""
        body = {"status": "active" if active else "archived"}
        await self.request("PATCH", self.record_path(remote_id), json=body, op="archive")

    @override
    async def find_by_external_id(self, external_id: str) -> list[RemoteCustomer] | None:
        """Records whose ``metadata.external_id`` is ``external_id`` (always written)."""
        params = {"metadata__external_id": external_id}
        response = await self.request("GET", "/customers/", params=params, op="find")
        return [self.read(raw) for raw in self.paginator.records(response.json())]

    async def _load_states(self, customer: Customer) -> None:
        """Cache the state catalog of the customer's country, when it has a state.

        ``GET /states/?country=XX`` is assumed, not documented. Its paged
        envelope is followed to the end once per country per connector
        instance; the lock makes concurrent writes share that one walk.
        """
        shaped = self.shape(customer)
        country = shaped.country
        if shaped.state is None or country is None:
            return
        async with self._states_lock:
            if country in self._states:
                return
            found: dict[str, int] = {}
            async for states in self.walk(Listing("/states/", {"country": country}), op="states"):
                for state in states:
                    found.setdefault(_fold(str(state["name"])), int(state["id"]))
            self._states[country] = found

    def _state_id(self, country: str, state: str | None) -> int | None:
        if state is None:
            return None
        if country not in self._states:
            raise RuntimeError(f"states of {country} not loaded: write through create/update")
        found = self._states[country].get(_fold(state))
        if found is None:
            raise FieldMappingError("state", f"the state is not a piriod state of {country}")
        return found


def _fold(name: str) -> str:
    """Case-, accent- and spacing-insensitive form of a state name."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


__all__ = ["REFERENCE_LIMIT", "REGULATED_COUNTRIES", "PiriodConnector", "PiriodSettings"]
