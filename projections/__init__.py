"""Projections: the ranking tables, the rules that fill them, closing, the results API, replay."""
