"""Bigcapital customers (connector-apis.md, section 1).

A data sheet plus three quirks the base cannot know about:

- a complete pull walks two listings, ``inactiveMode=false`` (active only) and
  ``inactiveMode=true`` (inactive only);
- the postcode is written as ``billingAddressZipcode`` but read back as
  ``billing_address_postcode``; the server silently drops a ``...Postcode`` key;
- (in)activation is its own ``PATCH /api/contacts/{id}/(in)activate`` call, and
  repeating it is a 400 (``CONTACT_ALREADY_ACTIVE``) that we read as success.

Bigcapital has no identity slot and no tax id: only ``email`` can match a
record again, and a create is never retried once it may have reached the server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal, cast

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
    host_of,
)
from connectors.mapping import country_alpha2, country_name
from connectors.model import Customer, clean
from connectors.pagination import PageNumberPaginator

#: canonical field → (request name, response name) for plain text fields.
_TEXT: Mapping[str, tuple[str, str]] = {
    "company_name": ("companyName", "company_name"),
    "first_name": ("firstName", "first_name"),
    "last_name": ("lastName", "last_name"),
    "email": ("email", "email"),
    "phone": ("workPhone", "work_phone"),
    "mobile": ("personalPhone", "personal_phone"),
    "website": ("website", "website"),
    "address_line1": ("billingAddress1", "billing_address1"),
    "address_line2": ("billingAddress2", "billing_address2"),
    "city": ("billingAddressCity", "billing_address_city"),
    "state": ("billingAddressState", "billing_address_state"),
    # The validator only knows ...Zipcode; storage and responses say ...postcode.
    "postal_code": ("billingAddressZipcode", "billing_address_postcode"),
    "notes": ("note", "note"),
}
_OTHER_NAMES: Mapping[str, str] = {
    "displayName": "name", "display_name": "name",
    "customerType": "kind", "customer_type": "kind",
    "billingAddressCountry": "country", "billing_address_country": "country",
    "currencyCode": "currency", "currency_code": "currency",
    "billingAddressPostcode": "postal_code",
}  # fmt: skip
_KINDS: Mapping[str, Literal["company", "individual"]] = {
    "business": "company",
    "individual": "individual",
}
_KEPT = frozenset({*_TEXT, "country", "currency"})
_LISTING = {"columnSortBy": "created_at", "sortOrder": "asc"}  # oldest first: stable pages


class BigcapitalSettings(ConnectionSettings):
    """A Bigcapital connection: an API key, and the organization for a user JWT.

    Attributes:
        api_key: ``bc_...`` key (or a user JWT), sent as a bearer token.
        organization_id: sent as the ``organization-id`` header when set.
    """

    system: Literal["bigcapital"]
    api_key: SecretStr
    organization_id: str | None = None


class BigcapitalConnector(Connector):
    """Bigcapital's ``/api/customers``: page-number listings, camelCase writes."""

    system = "bigcapital"
    settings_model = BigcapitalSettings
    spec = TargetSpec(
        fields=_KEPT,
        required=frozenset({"name", "currency"}),  # currencyCode is required on create
        limits={name: 255 for name in (_KEPT | {"name"}) - {"notes", "country", "currency"}},
        identity_slot=False,
        archive=True,
        formats={"currency": (r"[A-Z]{3}", "an ISO 4217 currency code")},
    )
    paginator = PageNumberPaginator(
        items_key="customers",
        page_param="page",
        size_param="pageSize",
        page_size=100,
        total_items_path=("pagination", "total"),
    )
    create_path = "/api/customers"
    item_path = "/api/customers/{id}"
    update_method = "PUT"
    can_filter_since = True  # created_at takes date comparators; updated_at takes none
    vendor_fields = {
        **{name: canonical for canonical, names in _TEXT.items() for name in names},
        **_OTHER_NAMES,
    }

    @property
    @override
    def tenant(self) -> str:
        settings = self._settings
        return settings.organization_id or host_of(settings.base_url)

    @property
    def _settings(self) -> BigcapitalSettings:
        return cast(BigcapitalSettings, self.settings)

    @override
    def auth(self) -> httpx.Auth:
        headers = {"Authorization": f"Bearer {self._settings.api_key.get_secret_value()}"}
        if self._settings.organization_id:
            headers["organization-id"] = self._settings.organization_id
        return HeaderAuth(headers)

    @override
    def listings(self) -> Sequence[Listing]:
        params: dict[str, str | int] = dict(_LISTING)
        if self.since is not None:
            # "after" compares dates strictly: start the day before, a superset is harmless.
            day = (self.since - timedelta(days=1)).isoformat()
            role = {"fieldKey": "created_at", "comparator": "after", "value": day}
            params["stringifiedFilterRoles"] = json.dumps([{**role, "condition": "and"}])
        # inactiveMode=false lists only active customers and true only inactive ones.
        return [Listing(self.collection, {"inactiveMode": m, **params}) for m in ("false", "true")]

    @override
    def to_canonical(self, raw: Mapping[str, Any]) -> Customer:
        kind = _KINDS.get(str(raw.get("customer_type")))
        if kind is None:
            raise FieldMappingError("kind", "bigcapital customer_type is not business/individual")
        name = clean(raw.get("display_name"))
        if name is None:
            raise FieldMappingError("name", "bigcapital record has no display_name")
        return Customer(
            kind=kind,
            name=name,
            # Free text ("United States"): a country we cannot place is a problem, never a guess.
            country=country_alpha2(raw.get("billing_address_country"), system=self.system),
            currency=clean(raw.get("currency_code")),
            active=bool(raw.get("active", True)),
            **{canonical: clean(raw.get(read)) for canonical, (_, read) in _TEXT.items()},
        )

    @override
    def to_payload(self, customer: Customer, external_id: str, *, create: bool) -> dict[str, Any]:
        # Every field goes out, None included: PUT keeps the fields it is not sent,
        # so a null is the only way to clear one. ``active`` is never sent: the
        # engine creates active and archives through set_active.
        body: dict[str, Any] = {
            "customerType": "individual" if customer.kind == "individual" else "business",
            "displayName": customer.name,  # required on every PUT too
            **{write: getattr(customer, canonical) for canonical, (write, _) in _TEXT.items()},
            "billingAddressCountry": country_name(customer.country) if customer.country else None,
        }
        if create:
            body["currencyCode"] = customer.currency  # fixed once created; PUT ignores it
        return body

    @override
    async def create(self, customer: Customer, external_id: str) -> CreateResult:
        result = await super().create(customer, external_id)
        # The doc does not say what the 201 carries; should it be an {id, message}
        # envelope rather than the record, read the record back.
        if result.remote.customer is None and result.remote.id != "?":
            return CreateResult(await self.get(result.remote.id))
        return result

    @override
    async def set_active(self, remote_id: str, active: bool) -> None:
        verb = "activate" if active else "inactivate"
        response = await self.request("PATCH", f"/api/contacts/{remote_id}/{verb}", op=verb, ok=frozenset({400}))
        if response.status_code == 400:
            # Already in the wanted state is success: a retry after a lost answer lands here.
            already = f"CONTACT_ALREADY_{'ACTIVE' if active else 'INACTIVE'}"
            if not any(message.startswith(already) for _, message in self.parse_error(response)):
                raise self.classify(response, verb)


__all__ = ["BigcapitalConnector", "BigcapitalSettings"]
