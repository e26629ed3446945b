"""Bigcapital customers (connector-apis.md, section 1, and the real server's recordings).

A data sheet plus the quirks the base cannot know about, each seen on the
real server (docs/api-assumptions.md, Bigcapital says which exchange):

- a complete pull walks two listings, ``inactiveMode=false`` (active only) and
  ``inactiveMode=true`` (inactive only), in pages of 1,000: the server sets no
  maximum and allows 10 calls a minute per route;
- no postcode can be written: ``billingAddressZipcode`` makes the server
  answer 500 (even as ``null``) and ``...Postcode`` keys are dropped, so
  ``postal_code`` is not a field Bigcapital keeps, and none is ever sent;
- ``created_at`` is ``null`` for every record made through the API: there is
  no incremental listing, and ``backfill --since`` is refused;
- text over 255 characters, characters outside the Basic Multilingual Plane and
  a currency that is not three letters are HTTP 500s, so they are refused here
  first, naming the canonical field;
- create and edit answer the raw row (``contact_type``, ``active`` as 1/0), GET
  the transformed customer: both are read;
- the tenant is the organization the key belongs to, asked once per run from
  ``GET /api/organization/current`` when the config does not name it;
- (in)activation is its own ``PATCH /api/contacts/{id}/(in)activate`` call, and
  repeating it is a 400 (``CONTACT_ALREADY_ACTIVE``) that we read as success.

Bigcapital has no identity slot and no tax id: only ``email`` can match a
record again, and a create is never retried once it may have reached the server.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import SecretStr
from typing_extensions import override

from connectors import converters as cv
from connectors.auth import HeaderAuth, ask_tenant
from connectors.base import Connector, Listing, TargetSpec
from connectors.errors import error_codes
from connectors.fields import Field, FieldTable
from connectors.http import Auth, body_or_none
from connectors.pagination import PageNumberPaginator
from connectors.settings import ConnectionSettings, host_of


def _text(canonical: str, write: str, read: str) -> Field:
    """A text field: camelCase in requests, snake_case in answers; empty is written as null."""
    return Field(canonical, read, write, encode=cv.blank_is_null)


# A PUT keeps the fields it is not sent, so an update sends every field and null clears one
# ("" is refused for email); a create leaves empty fields out. ``active`` is never written:
# the engine creates active and archives through set_active. billing_address_postcode is not
# read: no request can write it (see the module doc).
# fmt: off
FIELDS = FieldTable(
    # GET answers customer_type (and contact_type); create and edit answer the raw row, contact_type only.
    Field("kind", ("customer_type", "contact_type"), "customerType",
          cv.choice({"business": "company", "individual": "individual"},
                    "bigcapital customer type is not business/individual"), cv.to_contact_type),
    Field("name", "display_name", "displayName", cv.required(cv.text, "bigcapital record has no display_name"),
          kept=False),  # required on every PUT too
    Field("active", "active", decode=cv.bigcapital_active),
    # Free text ("United States"): a country we cannot place is a problem, never a guess.
    Field("country", "billing_address_country", "billingAddressCountry", cv.alpha2, cv.to_country_name),
    Field("currency", "currency_code", "currencyCode", when="create"),  # fixed once created; PUT ignores it
    _text("company_name", "companyName", "company_name"), _text("first_name", "firstName", "first_name"),
    _text("last_name", "lastName", "last_name"), _text("email", "email", "email"),
    _text("phone", "workPhone", "work_phone"), _text("mobile", "personalPhone", "personal_phone"),
    _text("website", "website", "website"), _text("address_line1", "billingAddress1", "billing_address1"),
    _text("address_line2", "billingAddress2", "billing_address2"),
    _text("city", "billingAddressCity", "billing_address_city"),
    _text("state", "billingAddressState", "billing_address_state"), _text("notes", "note", "note"),
)
# fmt: on
#: Every text column is a varchar(255) (the note too, by the strict reading): longer is a 500.
_LIMITED = (FIELDS.kept - {"country", "currency"}) | {"name"}
_LISTING = {"columnSortBy": "created_at", "sortOrder": "asc"}
_ORGANIZATION_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class BigcapitalSettings(ConnectionSettings):
    """A Bigcapital connection: an API key, and the organization for a user JWT.

    Attributes:
        api_key: ``bc_...`` key (or a user JWT), sent as a bearer token.
        organization_id: sent as the ``organization-id`` header when set.
    """

    system: Literal["bigcapital"]
    api_key: SecretStr
    organization_id: str | None = None


class BigcapitalConnector(Connector[BigcapitalSettings]):
    """Bigcapital's ``/api/customers``: page-number listings, camelCase writes."""

    system = "bigcapital"
    settings_model = BigcapitalSettings
    fields = FIELDS
    spec = TargetSpec(
        fields=FIELDS.kept,
        lossy=FIELDS.lossy,
        required=frozenset({"name", "currency"}),  # currencyCode is required on create
        limits=dict.fromkeys(sorted(_LIMITED), 255),
        formats={"currency": (r"[A-Z]{3}", "an ISO 4217 currency code")},
        # The tables are utf8mb3: a character beyond U+FFFF (emoji) makes the server answer 500.
        basic_plane=_LIMITED | {"currency"},
    )
    # No maximum page size, and 10 calls a minute per route: few large pages.
    paginator = PageNumberPaginator(
        items_key="customers", page_param="page", size_param="pageSize", page_size=1000,
        total_items_path=("pagination", "total"),
    )  # fmt: skip
    create_path = "/api/customers"
    item_path = "/api/customers/{id}"
    #: why ``backfill --since`` is refused, for the one-line message.
    since_refusal: ClassVar[str] = "its server never sets created_at, and no listing filters by date"
    #: the organization ``GET /api/organization/current`` named, when the config names none.
    _organization: str | None = None

    @property
    @override
    def tenant(self) -> str:
        tenant = self.settings.organization_id or self._organization
        if tenant is None:
            raise RuntimeError("bigcapital: the organization is known once the connection is open")
        return tenant

    @override
    def auth(self) -> Auth:
        headers = {"Authorization": f"Bearer {self.settings.api_key.get_secret_value()}"}
        if self.settings.organization_id:
            headers["organization-id"] = self.settings.organization_id
        return HeaderAuth(headers)

    @override
    async def start(self) -> None:
        """Ask the key's organization once: it names the tenant in external ids.

        Raises:
            AuthError: the server refused the key.
            FatalError: the server has no such route, or answered no usable id.
        """
        if not self.settings.organization_id and self._organization is None:
            path = "/api/organization/current"
            self._organization = await ask_tenant(self.request, self.system, path, "organization_id", _ORGANIZATION_ID)

    @override
    def external_id_aliases(self, remote_id: str) -> tuple[str, ...]:
        # Before the organization was asked, external ids named the host (and port) of base_url.
        if self.settings.organization_id:
            return ()
        return (f"{self.system}:{host_of(self.settings.base_url)}:{remote_id}",)

    @override
    def listings(self) -> Sequence[Listing]:
        # inactiveMode=false lists only active customers and true only inactive ones.
        return [Listing(self.collection, {"inactiveMode": m, **_LISTING}) for m in ("false", "true")]

    @override
    async def set_active(self, remote_id: str, active: bool) -> None:
        verb = "activate" if active else "inactivate"
        response = await self.request("PATCH", f"/api/contacts/{remote_id}/{verb}", op=verb, ok=frozenset({400}))
        if response.status_code == 400:
            # Already in the wanted state is success: a retry after a lost answer lands here.
            already = f"CONTACT_ALREADY_{'ACTIVE' if active else 'INACTIVE'}"
            if already not in error_codes(body_or_none(response)):
                raise self.classify(response, verb)


__all__ = ["BigcapitalConnector", "BigcapitalSettings"]
