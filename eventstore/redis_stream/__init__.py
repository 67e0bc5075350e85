"""The Redis/Valkey store, one module per idea: the client and the server's checks (client), the Lua
scripts and their typed replies (scripts), shared round trips (batching), ingest's writes (writer), a
scorer's reads (consumer) and leases (leases), and what anyone may inspect (inspection).

Only this package imports redis-py; every driver error leaves it as StoreUnavailable."""
