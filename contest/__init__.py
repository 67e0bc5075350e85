"""The contest definition and its rules: pure data and pure functions, imported by every tier."""
