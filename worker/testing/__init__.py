"""The connector contract suite, for any system plug-in, after the Singer SDK's standard tap tests.

A plug-in's own tests need one line (and pytest)::

    from worker.testing import contract_test_class

    TestBooksContract = contract_test_class("books")   # a registered system, or its System

The class checks the system's connector against its emulator (the
``custsync.sandbox`` entry point of the same name) for

- paging to the end of every listing, with no record twice;
- the round trip of every canonical field it keeps, through create, update,
  ``pages()`` and ``get()``, and of the archived state where it has one;
- the round trip of hypothesis-generated customers the system can take: every
  field its spec declares exact (``spec.exact``: kept, ``kind`` and ``name``, minus
  ``spec.lossy``) comes back as it went in, and every lossy one is rendered once
  and then stays;
- an update limited to some fields (what a pipeline speaks for) leaving the
  other kept fields as they are;
- the classification of 401 / 403 / 404 / 409 / 422 / 429 / 5xx, served over
  HTTP by the emulator's fault injector, into the error tree;
- finding a record again: by external_id where the system has an identity
  slot, by the engine's natural-key recovery where it has none;
- no secret of its settings in any log event or error message.

The tests are plain functions that run their own event loop: no pytest
plug-in beyond pytest is needed. pytest is imported only when a class is made.

The modules: :mod:`~worker.testing.contract` (the factory and the fixtures),
:mod:`~worker.testing.records`, :mod:`~worker.testing.failures` and
:mod:`~worker.testing.identity`, :mod:`~worker.testing.properties` (the tests, one base class
each), :mod:`~worker.testing.strategies` (the generated customers; hypothesis is imported only
when a class is made),
:mod:`~worker.testing.static` (the engine from a source of fixed records) and
:mod:`~worker.testing.support` (the helpers they share).
"""

from __future__ import annotations

from worker.testing.contract import contract_test_class
from worker.testing.static import StaticSource, sync_from_static
from worker.testing.support import BASE_URL, EXPECTED_ERRORS, EXTERNAL_ID, OPS, created, differences, kept, pull

__all__ = [
    "BASE_URL",
    "EXPECTED_ERRORS",
    "EXTERNAL_ID",
    "OPS",
    "StaticSource",
    "contract_test_class",
    "created",
    "differences",
    "kept",
    "pull",
    "sync_from_static",
]
