"""Tooling for tests, benchmarks and the screenshot script (not part of the app or the library)."""
