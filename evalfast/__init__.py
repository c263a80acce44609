"""evalfast: fast, trustworthy batch evaluation of text-embedding retrieval models.

Example::

    from evalfast import Encoder, evaluate, load_golden
    result = evaluate(Encoder("export/all-MiniLM-L6-v2"), load_golden("data/golden/handwritten"))
    print(result.metrics["ndcg@10"])

The names below are imported on first use, so that ``import evalfast`` (and the command line, which only
needs a few of them) starts fast.
"""

from __future__ import annotations

import importlib
import sys
import types

# public name -> the submodule that defines it
_SOURCES = {
    "EmbeddingCache": "model.cache",
    "Encoder": "model.encoder",
    "EncoderConfig": "model.encoder",
    "EvalConfig": "evaluate",
    "EvalResult": "evaluate",
    "EvalfastError": "errors",
    "GoldenSet": "data.golden",
    "Run": "data.run",
    "compare_results": "comparison.compare",
    "embed": "model.embeddings",
    "evaluate": "evaluate",
    "export_model": "model.export",
    "load_golden": "data.golden",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    """Import the submodule defining ``name`` on first use (PEP 562), and keep the name here; ``__version__`` is
    the installed package's (its metadata, so pyproject.toml holds the one version), "unknown" when it is run from
    a checkout that is not installed."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version(__name__)
        except PackageNotFoundError:
            value = "unknown"
        globals()[name] = value
        return value
    if name not in _SOURCES:
        raise AttributeError(f"module 'evalfast' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_SOURCES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))


class _Package(types.ModuleType):
    """Keeps ``evalfast.evaluate`` the function: importing the submodule of that name would bind the module."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and _SOURCES.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
