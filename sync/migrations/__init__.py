"""Alembic migrations of the state store; applied by gridrecon itself before each use."""
