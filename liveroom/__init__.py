"""Shared front of the project: settings (environment first) and the ``liveroom`` CLI."""
