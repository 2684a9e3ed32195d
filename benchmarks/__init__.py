"""Side-by-side benchmarks of aiolog and its peers: ``python -m benchmarks``."""
