"""Alembic environment and revisions of the advdb schema (shipped inside the package)."""
