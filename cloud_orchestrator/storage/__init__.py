"""Storage: the database URL (no SQLAlchemy import), the engine and the ORM models."""
