"""queue guards: one in-progress entry per file, deferred entries out of the claim index, a
constrained status

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 16:30:00

Before the unique in-progress index can exist, any file already in progress twice (the race
this index closes) keeps its oldest entry in progress and the others are failed with a note, so
nothing is dropped silently. A status outside the three known ones is failed the same way.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATUSES = "'waiting', 'in_progress', 'failed'"
QUEUES = {
    "calcachequeue": ("filename",),
    "exportqueue": ("filename", "destination"),
    "ingestqueue": ("filename",),
    "previewqueue": ("filename",),
    "uploadqueue": ("filename",),
}


def _where(condition: str) -> dict:
    clause = sa.text(condition)
    return {"sqlite_where": clause, "postgresql_where": clause}


def _settle_rows(table: str, exclusive: tuple[str, ...]) -> None:
    same = " AND ".join(f"other.{col} = {table}.{col}" for col in exclusive)
    op.execute(
        f"UPDATE {table} SET status = 'failed', error = 'in progress at the same time as "
        "another entry of this file when the schema was upgraded; add it again if needed' "
        f"WHERE status = 'in_progress' AND EXISTS (SELECT 1 FROM {table} other "
        f"WHERE other.status = 'in_progress' AND other.id < {table}.id AND {same})"
    )
    op.execute(
        f"UPDATE {table} SET error = 'unknown status ' || status || ' at schema upgrade', "
        f"status = 'failed' WHERE status NOT IN ({STATUSES})"
    )


def _waiting_and_failed_indexes(table: str) -> None:
    key = ["filename", "path", "destination"][: 3 if table == "exportqueue" else 2]
    op.create_index(f"uq_{table}_waiting", table, key, unique=True, **_where("status = 'waiting'"))
    op.create_index(f"ix_{table}_failed", table, ["filename"], **_where("status = 'failed'"))


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, exclusive in QUEUES.items():
        _settle_rows(table, exclusive)
        op.drop_index(f"ix_{table}_claim", table_name=table)
        op.drop_index(f"ix_{table}_in_progress", table_name=table)
        if sqlite:  # a CHECK needs the table rebuilt: take its indexes off first
            for name in (f"ix_{table}_failed", f"uq_{table}_waiting"):
                op.drop_index(name, table_name=table)
            with op.batch_alter_table(table, recreate="always") as batch_op:
                batch_op.create_check_constraint(
                    op.f(f"ck_{table}_status"), f"status IN ({STATUSES})"
                )
            _waiting_and_failed_indexes(table)
        else:
            op.create_check_constraint(op.f(f"ck_{table}_status"), table, f"status IN ({STATUSES})")
        op.create_index(
            f"ix_{table}_claim",
            table,
            ["sortkey", "id"],
            **_where("status = 'waiting' AND after IS NULL"),
        )
        op.create_index(
            f"ix_{table}_deferred",
            table,
            ["after"],
            **_where("status = 'waiting' AND after IS NOT NULL"),
        )
        op.create_index(
            f"uq_{table}_in_progress",
            table,
            list(exclusive),
            unique=True,
            **_where("status = 'in_progress'"),
        )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in QUEUES:
        for name in (f"uq_{table}_in_progress", f"ix_{table}_deferred", f"ix_{table}_claim"):
            op.drop_index(name, table_name=table)
        if sqlite:
            for name in (f"ix_{table}_failed", f"uq_{table}_waiting"):
                op.drop_index(name, table_name=table)
            with op.batch_alter_table(table, recreate="always") as batch_op:
                batch_op.drop_constraint(op.f(f"ck_{table}_status"), type_="check")
            _waiting_and_failed_indexes(table)
        else:
            op.drop_constraint(op.f(f"ck_{table}_status"), table, type_="check")
        op.create_index(
            f"ix_{table}_claim", table, ["sortkey", "id"], **_where("status = 'waiting'")
        )
        op.create_index(
            f"ix_{table}_in_progress",
            table,
            ["filename", "heartbeat"],
            **_where("status = 'in_progress'"),
        )
