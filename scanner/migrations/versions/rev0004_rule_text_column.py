"""A finding names its rule text in a column of its own, not only inside its JSON body: the store
then finds the texts a run needs, and the ones no finding uses any more, in plain SQL on both
SQLite and PostgreSQL (no JSON function, whose spelling differs between the two).

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

_KEY_IN_BODY = {
    "sqlite": "json_extract(body, '$.rule_text')",
    "postgresql": "CAST(body AS jsonb) ->> 'rule_text'",
}
"""Only rows written by schema 0003 hold the key in their body (a PostgreSQL store never has any:
it starts at the head), but each dialect gets its own spelling all the same."""


def upgrade() -> None:
    op.add_column("findings", sa.Column("rule_text", sa.Text))
    key = _KEY_IN_BODY[op.get_bind().dialect.name]
    op.execute(f"UPDATE findings SET rule_text = {key} WHERE body LIKE '%\"rule_text\"%'")  # noqa: S608
