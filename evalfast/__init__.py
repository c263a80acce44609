"""evalfast: fast, trustworthy batch evaluation of text-embedding retrieval models.

Example::

    from evalfast import Encoder, evaluate, load_golden
    result = evaluate(Encoder("export/all-MiniLM-L6-v2"), load_golden("data/golden/handwritten"))
    print(result.metrics["ndcg@10"])
"""

from .cache import EmbeddingCache
from .compare import compare_results
from .embeddings import embed
from .encoder import Encoder, EncoderConfig
from .errors import EvalfastError
from .evaluate import EvalConfig, EvalResult, evaluate
from .export import export_model
from .golden import GoldenSet, load_golden
from .run import Run

__version__ = "0.1.0"

__all__ = [
    "EmbeddingCache",
    "Encoder",
    "EncoderConfig",
    "EvalConfig",
    "EvalResult",
    "EvalfastError",
    "GoldenSet",
    "Run",
    "compare_results",
    "embed",
    "evaluate",
    "export_model",
    "load_golden",
]
