"""console_sessions: server-side console sessions (the cookie holds a random id, not a token)

Revision ID: 0010_console_sessions
Revises: 0009_manufacturer
Create Date: 2026-12-01

Until now the console's cookie carried the API token itself: a copied cookie was a
working token for the whole API for up to 90 days. Now the cookie holds a random session
id; the catalog keeps its SHA-256, the token it stands for and its expiry, and sign-out
deletes it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_console_sessions"
down_revision = "0009_manufacturer"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("sid_sha256", sa.String(length=64), nullable=False, unique=True),
        sa.Column(
            "token_id", sa.String(length=32), sa.ForeignKey("api_tokens.token_id"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_console_sessions_token_id", "console_sessions", ["token_id"])
    op.create_index("ix_console_sessions_expires_at", "console_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_console_sessions_expires_at", table_name="console_sessions")
    op.drop_index("ix_console_sessions_token_id", table_name="console_sessions")
    op.drop_table("console_sessions")
