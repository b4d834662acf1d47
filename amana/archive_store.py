"""The archive store the settings name, built at each entry point that writes or reads it."""

from __future__ import annotations

from amana.settings import Settings
from archive.stores import ArchiveStore, StoreCredentials
from archive.stores.factory import open_store


def credentials(settings: Settings) -> StoreCredentials:
    return StoreCredentials(
        token=settings.archive_token.get_secret_value() if settings.archive_token else None,
        user=settings.archive_user,
        password=(
            settings.archive_password.get_secret_value() if settings.archive_password else None
        ),
        ca_file=settings.archive_ca,
    )


def archive_store(settings: Settings) -> ArchiveStore:
    return open_store(settings.archive_store_url, credentials(settings))
