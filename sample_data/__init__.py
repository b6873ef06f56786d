"""Seeded sample PMS2.0 / SG186 databases with documented planted defects (see README.md)."""

from .generator import AS_OF, DEFAULT_SEED, SCALES, generate, planted_manifest, write_sqlite_pair

__all__ = ["AS_OF", "DEFAULT_SEED", "SCALES", "generate", "planted_manifest", "write_sqlite_pair"]
