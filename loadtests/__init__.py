"""Load, chaos and capacity tests of the hot path (bounded in time, loopback only)."""
