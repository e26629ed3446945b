"""``custsync init``: a commented config for the systems a user has, to fill in.

Each connection block says where each setting is found in that system
(docs/accounts.md has the long version) and names its secrets as ``${NAME}``
environment variables, so the file itself holds none.
"""

from __future__ import annotations

from collections.abc import Sequence

SYSTEMS = ("bigcapital", "thredfi", "piriod", "timbrix")

_HEADER = """\
# custsync config, written by `custsync init`. Fill in the values marked TODO, export the
# ${NAME} variables (secrets never go in this file), then run `custsync check`.
# Where each setting comes from: docs/accounts.md.

[state]
url = "sqlite:///custsync.db"            # postgresql+psycopg://user:pass@host/db in production ($CUSTSYNC_STATE_URL)

[broker]
url = "redis://localhost:6379/0"         # only the service (worker, beat) needs it ($CUSTSYNC_BROKER_URL)
"""

_BLOCKS = {
    "bigcapital": """\
[connections.bigcapital]
system = "bigcapital"
base_url = "https://api.bigcapital.com"  # self-hosted: https://YOUR-HOST (custsync appends /api/...)
# Preferences → API Keys in the web app; the key is shown once and acts as the user who made it.
api_key = "${BIGCAPITAL_API_KEY}"
# organization_id = "TODO"               # leave out: custsync asks GET /api/organization/current
""",
    "thredfi": """\
[connections.thredfi]
system = "thredfi"
base_url = "https://sandbox.thredfi.com" # TODO: confirm the production host with Thredfi
partner_uuid = "${THREDFI_PARTNER_UUID}" # issued by Thredfi with the partner API key
api_key = "${THREDFI_API_KEY}"
business_id = "TODO"                     # the business's UUID (the /businesses/{id}/ part of its URLs)
""",
    "piriod": """\
[connections.piriod]
system = "piriod"
base_url = "https://api.piriod.com"
api_token = "${PIRIOD_API_TOKEN}"        # Settings → API tokens; a new token cancels the old one
workspace = "TODO"                       # the account id, acc_..., sent as x-simple-workspace
test_mode = true                         # the test data set; set false for live data
""",
    "timbrix": """\
[connections.timbrix]
system = "timbrix"
base_url = "https://api.timbrix.com/api" # TODO: confirm the host with Timbrix; keep the /api suffix
api_key = "${TIMBRIX_API_KEY}"           # Settings → API Keys (sk_test_... stamps nothing fiscal)
organization_id = "TODO"                 # the organization's UUID (the /organizations/{id}/ part of its URLs)
""",
}

_PIPELINE_NOTES = {
    "bigcapital": '# defaults = { currency = "USD" }      # Bigcapital requires a currency on create',
    "timbrix": '# defaults = { tax_system = "601", invoice_use = "G03" }   # CFDI needs both; few sources hold them',
}


class InitError(ValueError):
    """The systems asked for cannot make a config."""


def init_config(systems: Sequence[str]) -> str:
    """The commented config text for ``systems`` (each once).

    Raises:
        InitError: none given, or one is not a system custsync knows.
    """
    chosen = list(dict.fromkeys(systems))
    if not chosen:
        raise InitError(f"--systems: name at least one of {', '.join(SYSTEMS)}")
    unknown = [s for s in chosen if s not in SYSTEMS]
    if unknown:
        raise InitError(f"--systems: unknown system {unknown[0]!r} (one of {', '.join(SYSTEMS)})")
    parts = [_HEADER, *(_BLOCKS[s] for s in chosen)]
    for source in chosen:
        for target in chosen:
            if source == target:
                continue
            lines = [
                f"[pipelines.{source}_to_{target}]",
                f'source = "{source}"',
                f'target = "{target}"',
                '# schedule = "*/15 * * * *"            # cron, UTC; leave out to run on demand only',
            ]
            if target in _PIPELINE_NOTES:
                lines.append(_PIPELINE_NOTES[target])
            parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


__all__ = ["SYSTEMS", "InitError", "init_config"]
