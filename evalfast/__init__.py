"""evalfast: fast, trustworthy batch evaluation of text-embedding retrieval models."""

__version__ = "0.1.0"
