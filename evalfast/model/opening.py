"""Opening a model for embedding: a name, a model folder or an export, exported once and its precision variant
built once, as a ready :class:`~evalfast.model.encoder.Encoder`."""

from __future__ import annotations

from pathlib import Path

from evalfast.model.cache import default_cache_dir
from evalfast.model.encoder import Encoder, EncoderConfig
from evalfast.model.export import ensure_exported
from evalfast.model.once import Status
from evalfast.model.precision import check_precision
from evalfast.model.variants import ensure_variant


def open_model(model: str, config: EncoderConfig = EncoderConfig(), cache_dir: Path | None = None,
               trust_remote_code: bool = False, on_status: Status | None = None) -> Encoder:
    """The encoder for ``model`` (an evalfast export folder, a sentence-transformers or Hugging Face folder, or a
    registry name such as all-MiniLM-L6-v2) under ``config``. Exports and variants are made once, under
    ``cache_dir`` (default :func:`~evalfast.model.cache.default_cache_dir`), and reused; ``on_status`` gets a line
    before and after each of these first-use steps.

    Example::

        encoder = open_model("all-MiniLM-L6-v2", EncoderConfig(precision="int8"))
    """
    check_precision(config.precision, config.device)
    folder = ensure_exported(model, cache_dir or default_cache_dir(), trust_remote_code, on_status)
    ensure_variant(folder, config.precision, on_status)
    return Encoder(folder, config)
