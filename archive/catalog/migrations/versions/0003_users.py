"""users: tokens belong to named people, expire, and record their last use

Revision ID: 0003_users
Revises: 0002
Create Date: 2026-12-01

Every existing token becomes the only token of a new user named after its label (or its id
when the label is missing, malformed or already taken), with the token's role, so that every
caller keeps working; each gets an expiry DEFAULT_DAYS from the migration. Tokens held by one
person under several labels become several users: an admin merges them by disabling the
extras and minting new tokens for the one user that remains.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0003_users"
down_revision = "0002"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ROLE = sa.Enum("auditor", "steward", "admin", name="api_role", native_enum=False, length=16)
DEFAULT_DAYS = 90
# The same shape archive.governance.users accepts for a new name.
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def upgrade() -> None:
    users = op.create_table(
        "users",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", ROLE, nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", BIG_ID, nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))

    conn = op.get_bind()
    tokens = sa.table(
        "api_tokens",
        sa.column("id", BIG_ID),
        sa.column("token_id", sa.String()),
        sa.column("role", sa.String()),
        sa.column("label", sa.String()),
        sa.column("created_by", sa.String()),
        sa.column("user_id", BIG_ID),
        sa.column("expires_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    taken: set[str] = set()
    rows = conn.execute(
        sa.select(tokens.c.id, tokens.c.token_id, tokens.c.role, tokens.c.label).order_by(
            tokens.c.id
        )
    ).all()
    for row_id, token_id, role, label in rows:
        name = label.strip() if label else ""
        if not USER_NAME.match(name) or name in taken:
            name = token_id
        taken.add(name)
        user_id = conn.execute(
            users.insert()
            # The model stores the enum's names (STEWARD); upper() also takes a value typed in.
            .values(name=name, role=role.upper(), created_by="migration:0003_users", created_at=now)
            .returning(users.c.id)
        ).scalar_one()
        conn.execute(
            tokens.update()
            .where(tokens.c.id == row_id)
            .values(user_id=user_id, expires_at=now + timedelta(days=DEFAULT_DAYS))
        )

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.alter_column("user_id", existing_type=BIG_ID, nullable=False)
        batch_op.alter_column(
            "expires_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )
        batch_op.create_foreign_key("fk_api_tokens_user_id_users", "users", ["user_id"], ["id"])
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)
        # The role is the user's from now on: a copy on the token could only disagree.
        batch_op.drop_column("role")


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", ROLE, nullable=True))
    conn = op.get_bind()
    tokens = sa.table("api_tokens", sa.column("user_id", BIG_ID), sa.column("role", sa.String()))
    users = sa.table("users", sa.column("id", BIG_ID), sa.column("role", sa.String()))
    conn.execute(
        tokens.update().values(
            role=sa.select(users.c.role).where(users.c.id == tokens.c.user_id).scalar_subquery()
        )
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.alter_column("role", existing_type=ROLE, nullable=False)
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))
        batch_op.drop_constraint("fk_api_tokens_user_id_users", type_="foreignkey")
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("user_id")
    op.drop_table("users")
