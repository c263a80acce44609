"""What the command line's options choose among, importable without the engines behind them (a fast start)."""

from __future__ import annotations

DEVICES = ("cpu", "cuda")
DEFAULT_KS = (1, 3, 5, 10, 100)
MTEB_KS = (1, 3, 5, 10, 20, 100, 1000)  # the cutoffs of MTEB's retrieval results; the run is its top 1000
PROTOCOLS = ("qrels", "pairs", "mteb")
ROLES = ("query", "document", "plain")  # the kinds of text a prompt is chosen for (evalfast.model.conventions)
