"""Events: their types and encoding, the Redis stream side and the PostgreSQL event table."""
