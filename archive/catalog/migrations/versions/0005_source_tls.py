"""source tls: a registered source may be bound to a client certificate

Revision ID: 0005_source_tls
Revises: 0004_source_profiles
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_source_tls"
down_revision = "0004_source_profiles"
branch_labels = None
depends_on = None

COLUMNS = ("cert_sha256", "cert_cn")


def upgrade() -> None:
    # Nullable, no default: every source registered before stays unbound (AE title and
    # address only), as it was.
    for name in COLUMNS:
        op.add_column("sources", sa.Column(name, sa.String(64), nullable=True))


def downgrade() -> None:
    for name in COLUMNS:
        if op.get_bind().dialect.name == "sqlite":
            # A batch copy of `sources` would drop the table that jobs reference (see 0004).
            op.execute(sa.text(f"ALTER TABLE sources DROP COLUMN {name}"))
        else:
            op.drop_column("sources", name)
