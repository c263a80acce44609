"""Speed: throughput against sentence-transformers (bench) and production-like latency under load."""
