"""The HTTP API for auditors and stewards."""

from archive.api.app import create_app

__all__ = ["create_app"]
