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

from typing import Literal

from pydantic import SecretStr
from typing_extensions import override

from connectors import converters as cv
from connectors.auth import ClientCredentialsAuth, ExchangedTokenAuth
from connectors.base import Connector, CreateResult, TargetSpec
from connectors.fields import IDENTITY, Field, FieldTable, same
from connectors.http import Auth, parsed
from connectors.model import Customer
from connectors.pagination import PageNumberPaginator
from connectors.settings import ConnectionSettings

# A PATCH sends every kept field: null clears it. A create leaves nulls out, and
# ``status`` is never written: the engine creates active and archives afterwards.
# fmt: off
FIELDS = FieldTable(
    Field(IDENTITY, write="external_id", when="create"),
    # One name field per kind: the canonical name goes into whichever one.
    Field("name", write="company_name", decode=None, encode=cv.if_kind("company"), kept=False),
    Field("company_name", "company_name", round_trip="folded"),  # a company's name, nothing of its own
    Field("name", "individual_name", "individual_name", cv.thredfi_name, cv.if_kind("individual"), kept=False),
    Field("first_name", decode=cv.person_first, kept=False),
    Field("last_name", decode=cv.person_last, kept=False),
    Field("kind", decode=cv.kind_by_name),
    Field("country", "country", "country", cv.alpha2),
    Field("active", "status", decode=cv.thredfi_active),
    same("email"), same("phone", "office_phone"), same("mobile", "mobile_phone"),
    same("address_line1"), same("address_line2"), same("city"), same("state", "state_county"),
    same("postal_code"), same("tax_id", "vat_number"), same("notes"),
)
# fmt: on


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


class ThredfiConnector(Connector[ThredfiSettings]):
    """Thredfi's business customers: OAuth2 tokens, page numbers, ``external_id``."""

    system = "thredfi"
    settings_model = ThredfiSettings
    fields = FIELDS
    spec = TargetSpec(
        fields=FIELDS.kept,
        lossy=FIELDS.lossy,
        # Lengths are not documented; 255 is what the sandbox (a DRF CharField default) keeps.
        limits={name: 255 for name in (FIELDS.kept | {"name"}) - {"notes", "country"}},
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

    identity_key = "external_id"
    find_params = {"external_id": "{external_id}", "include_archived": "true"}
    find_exact = True  # should a server ever ignore the filter
    listing_params = {"include_archived": "true"}
    create_path = "/v1/platform/businesses/{business_id}/customers/"
    item_path = "/v1/platform/businesses/{business_id}/customers/{id}/"

    @property
    @override
    def tenant(self) -> str:
        return self.settings.business_id

    @override
    def auth(self) -> Auth:
        settings, root = self.settings, f"{self.settings.base_url.rstrip('/')}/v1/platform"
        key, clock = settings.api_key.get_secret_value(), self.clock
        partner = ClientCredentialsAuth(
            f"{root}/oauth2/token/", settings.partner_uuid, key, settings.timeout_s, clock=clock
        )
        if not settings.use_business_token:
            return partner
        return ExchangedTokenAuth(f"{root}/{settings.business_id}/oauth2/token/", partner, clock=clock)

    @override
    def shape(self, customer: Customer, *, truncate: bool = False) -> Customer:
        # Thredfi holds one name; shape it as a read splits it, so a round trip (and its fingerprint) is stable.
        shaped = cv.one_name_by_kind(super().shape(customer, truncate=truncate))
        return customer if shaped.__dict__ == customer.__dict__ else shaped  # shaped already (a split name put back)

    @override
    async def create(self, customer: Customer, external_id: str) -> CreateResult:
        body = self.to_payload(customer, external_id, create=True)
        response = await self.request("POST", self.collection, json=body, op="create", ok=frozenset({409}))
        if response.status_code != 409:
            return CreateResult(self.read(parsed(response)), existed=response.status_code == 200)
        # The error guide lists a 409 for a duplicate external_id: adopt the holder.
        found = await self.find_by_external_id(external_id)
        if not found:
            raise self.classify(response, "create")
        return CreateResult(found[0], existed=True)

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
