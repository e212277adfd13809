"""Sunbid: realtime disclosure and notification backend for public resource trading."""

__version__ = "0.1.0"
