"""Benchmarks: scripts that print numbers and save them as JSON (never run by the tests)."""
