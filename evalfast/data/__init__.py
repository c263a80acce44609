"""Golden sets, qrels and runs: reading, checking, converting and writing them (TREC, BEIR, CSV, JSONL)."""
