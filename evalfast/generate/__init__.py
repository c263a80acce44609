"""Golden-set generators: templates over a prompt library (heuristic) and an LLM (llm)."""
