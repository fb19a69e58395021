"""Benchmarks (`make bench`): figures measured against real servers, written to bench/results/*.json."""
