"""Piriod: Chilean billing and collections (connector-apis.md, section 3).

Where Piriod and the canonical customer differ:

- no person/company split: records read back as companies without name
  parts, while ``shape`` keeps the source's ``kind`` (the base always does);
- ``address`` is one line of at most 64 characters and there is no city:
  ``shape`` folds line 2 into line 1 (``"line1, line2"``) and drops the city;
- ``country`` and ``state`` are objects on read, an alpha-2 id and an integer id
  (from the states catalog, :meth:`PiriodConnector.prepare`) on write; Piriod
  files a customer without a country under the account's, and so does ``shape``;
- the identity is in ``reference`` (at most 64 characters) and always in
  ``metadata.external_id``; ``notes`` live in ``metadata.notes``. A PATCH
  replaces ``metadata`` wholesale: keys added by hand are dropped on update,
  and an update that does not speak for the notes leaves it out;
- a missing currency is defaulted by Piriod from the country, and so does
  ``shape``; a set one cannot be cleared (Piriod refuses a null currency).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import SecretStr
from typing_extensions import override

from connectors import converters as cv
from connectors.auth import HeaderAuth
from connectors.base import Connector, CreateResult, Listing, TargetSpec
from connectors.fields import IDENTITY, Field, FieldTable, same
from connectors.http import Auth, parsed
from connectors.model import Customer, FieldProblem, clean, updated
from connectors.pagination import NextLinkPaginator
from connectors.registry import EXTERNAL_ID
from connectors.settings import ConnectionSettings

#: Countries whose tax agency Piriod integrates with: RUT, RFC, NIT.
REGULATED_COUNTRIES = frozenset({"CL", "MX", "CO"})
#: ``reference`` holds at most this many characters; longer ids go to metadata only.
REFERENCE_LIMIT = 64
#: The currency Piriod files a customer without one under: its country's own.
_COUNTRY_CURRENCY = {"CL": "CLP", "MX": "MXN", "CO": "COP", "PE": "PEN", "AR": "ARS", "BR": "BRL",
                     "UY": "UYU", "US": "USD", "GB": "GBP", "CA": "CAD"}  # fmt: skip


#: what our external_ids look like: ``system:tenant:id``.
_OURS = EXTERNAL_ID  # for any registered system (connectors.registry)


# Nulls clear fields on update; a create leaves them out. Currency is never null:
# Piriod refuses it and defaults it from the country.
# fmt: off
FIELDS = FieldTable(
    Field("name", "name", "name", cv.required(cv.text, "the piriod record has no name")),
    # Piriod cannot tell people from companies: every customer reads back as one.
    Field("kind", decode=cv.constant("company"), round_trip="constant"),
    same("email"), same("phone"), same("website"),
    same("address_line1", "address", round_trip="folded"),  # line 2 folded in (shape)
    # An object on read, an id on write: it reads back as the catalog spells it ("valparaiso" → "Valparaíso").
    Field("state", "state", "state", cv.object_name, cv.to_catalog_id, round_trip="derived"),
    same("postal_code", "zip_code"),
    # An object on read, alpha-2 on write; none is filed under the account's country (shape).
    Field("country", "country", "country", cv.alpha2_of_object, round_trip="derived"),
    # None is defaulted from the country (shape, and Piriod itself where shape knows no currency).
    same("tax_id"), same("currency", clears=False, round_trip="derived"),
    Field(IDENTITY, write="reference", encode=cv.identity_up_to(REFERENCE_LIMIT)),
    # A PATCH replaces metadata wholesale: it holds the identity, and the notes.
    Field("notes", "metadata.notes", "metadata", cv.loose, cv.to_metadata, names=("metadata.notes",)),
    Field("active", "status", decode=cv.active_unless("archived"), names=()),
)
# fmt: on


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
    fields = FIELDS
    # fmt: off
    spec = TargetSpec(
        fields=FIELDS.kept,
        lossy=FIELDS.lossy,
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
    # One listing holds every status, oldest first: a record created during the walk lands on the
    # last page instead of shifting every page after it (and being read twice).
    listing_params = {"ordering": "created"}
    can_filter_since = True
    since_param = "created__gte"  # there is no filter on ``updated``
    find_params = {"metadata__external_id": "{external_id}"}  # always written

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: the states of each country written to, by name (:meth:`prepare` loads them).
        self.catalog = cv.Catalog("state", self.system)

    @property
    def tenant(self) -> str:
        """The workspace; test mode is a separate data set, hence its own tenant."""
        return f"{self.settings.workspace}:test" if self.settings.test_mode else self.settings.workspace

    def auth(self) -> Auth:
        """Token, workspace and test-mode headers on every call."""
        token, mode = self.settings.api_token.get_secret_value(), "true" if self.settings.test_mode else "false"
        return HeaderAuth({"Authorization": f"Token {token}", "x-simple-workspace": self.settings.workspace,
                           "x-piriod-test-mode": mode})  # fmt: skip

    def external_id_of(self, raw: Mapping[str, Any]) -> str | None:
        """``metadata.external_id`` (never cut), else ``reference`` when it is one of ours."""
        # Piriod users fill ``reference`` too (an order number): only our ``system:tenant:id`` shape counts.
        metadata = raw.get("metadata")
        held = clean(metadata.get("external_id") if isinstance(metadata, Mapping) else None)
        reference = clean(raw.get("reference"))
        if held is None and reference is not None and _OURS.fullmatch(reference):
            return reference
        return held

    @override
    def shape(self, customer: Customer, *, truncate: bool = False) -> Customer:
        """Fold ``address_line2`` into the one address line; default the country and currency."""
        country = customer.country or self.settings.account_country
        currency = customer.currency or _COUNTRY_CURRENCY.get(country)
        folded = updated(cv.fold_line2(customer), {"country": country, "currency": currency})
        return super().shape(folded, truncate=truncate)

    @override
    def extra_problems(self, shaped: Customer) -> list[FieldProblem]:
        """Piriod needs a tax id for customers of the account's own, regulated, country."""
        country = shaped.country
        if shaped.tax_id or country not in REGULATED_COUNTRIES or country != self.settings.account_country:
            return []
        return [FieldProblem("tax_id", f"required by piriod for {country} customers, missing in the source record")]

    @override
    async def create(self, customer: Customer, external_id: str) -> CreateResult:
        """Resolve the state's id, then create, retried only when it never reached Piriod."""
        # Piriod does not deduplicate: the engine looks the identity up (find_by_external_id) before a second create.
        await self.prepare(customer)
        body = self.to_payload(customer, external_id, create=True)
        response = await self.request("POST", self.collection, json=body, op="create", idempotent=False)
        return CreateResult(self.read(parsed(response)))

    @override
    async def set_active(self, remote_id: str, active: bool) -> None:
        """Archiving is a status change; there is no dedicated endpoint."""
        body = {"status": "active" if active else "archived"}
        await self.request("PATCH", self.record_path(remote_id), json=body, op="archive")

    @override
    async def prepare(self, customer: Customer) -> None:
        """Load the state catalog of the customer's country, when it has a state (once per connector).

        ``GET /states/?country=XX`` is assumed, not documented; its pages are followed to the end.
        """
        shaped = self.shape(customer)
        if (country := shaped.country) is not None and shaped.state is not None:
            await self.catalog.load(country, lambda: self.walk(Listing("/states/", {"country": country}), op="states"))


__all__ = ["REFERENCE_LIMIT", "REGULATED_COUNTRIES", "PiriodConnector", "PiriodSettings"]
