"""The run store's schema history, as Alembic migrations: one chain for SQLite and PostgreSQL.

`attt.scanner.store` runs them when it opens a store (`env.py` takes the store's own connection,
already inside the transaction that holds the migration lock). Revisions 0001 to 0003 are the
three schemas attt kept with `PRAGMA user_version` before Alembic, so an old SQLite file is
stamped at its version and carried forward from there. A new revision is a new file in
`versions/` whose `down_revision` is the current head; `store.SCHEMA_HEAD` names the head (a
test holds the two together). Never edit a revision that has shipped.
"""
