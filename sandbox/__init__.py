"""Emulators of the systems' APIs, for the demo, the tests and ``custsync sandbox`` (the ``sandbox`` extra).

The public surface, by module (nothing here imports a connector):

- :mod:`sandbox.server`: ``Sandbox`` (every registered emulator behind one app),
  ``BackgroundServer`` (served on loopback) and ``sandbox_config`` (a config
  pointing at it);
- :mod:`sandbox.plugin`: ``EmulatorPlugin``, what a system's plug-in declares
  under the ``custsync.sandbox`` entry points;
- :mod:`sandbox.fake`: seeded fake customers.

Each system's emulator module is reached through its entry point; the rest
(``_core``, ``_faults``, ``_store``, ``_middleware``) is machinery they share.
"""

__all__ = ["fake", "plugin", "server"]
