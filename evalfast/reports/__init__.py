"""Reports: terminal tables, Markdown, JSON, per-query lines, MTEB's result files and the HTML page."""
