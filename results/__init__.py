"""The results tier: the read-only results API and the public results page, over the read models."""
