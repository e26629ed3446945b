"""The four systems custsync ships, each one plug-in (``custsync.systems`` entry points in pyproject.toml)."""
