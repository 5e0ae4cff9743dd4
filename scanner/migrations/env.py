"""Alembic's entry point: migrate the connection the store hands over in `config.attributes`."""

from alembic import context
from sqlalchemy.engine import Connection

connection = context.config.attributes["connection"]
assert isinstance(connection, Connection), "the store runs its migrations on its own connection"
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
