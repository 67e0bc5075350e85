"""Scorer workers: read the stream in a consumer group, archive + project in one transaction, ack."""
