"""The manifest ``evalfast.json`` that every exported model folder carries, and reading it back."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .atomic import write_text
from .errors import ModelError

MANIFEST_NAME = "evalfast.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
OUTPUT_NAME = "sentence_embedding"
FORMAT_VERSION = 2  # 2 added similarity, prompts, default_prompt_name, truncate_dim, max_positions, trust_remote_code


@dataclass(frozen=True)
class Parity:
    """Agreement of the ONNX model with the PyTorch model on a probe set: 1 - cosine similarity, and the largest
    relative difference of the vectors' lengths (None in manifests written before it was measured)."""

    probe_texts: int
    max_one_minus_cos: float
    mean_one_minus_cos: float
    max_relative_norm_error: float | None = None


@dataclass(frozen=True)
class Manifest:
    """What an exported model is and how to run it (the content of ``evalfast.json``).

    The conventions are the model's own, read from its sentence-transformers configuration at export: the
    similarity function, whether the graph normalises its output, the prompts and the default prompt's name.
    Manifests of format 1 (before conventions were recorded) read as cosine, normalised and without prompts,
    which is what evalfast exported then.
    """

    source: str
    sha256: str
    opset: int
    max_seq_length: int  # tokens the model reads by default (sentence-transformers' max_seq_length)
    pooling: str
    normalize: bool  # the graph ends with a Normalize layer (unit vectors)
    dimension: int  # components of the graph's output
    do_lower_case: bool
    precision: str
    parity: Parity
    versions: dict[str, str] = field(default_factory=dict)
    similarity: str = "cosine"  # "cosine" or "dot": sentence-transformers' similarity_fn_name
    prompts: dict[str, str] = field(default_factory=dict)  # prompt name -> text prepended to each input
    default_prompt_name: str | None = None  # the prompt plain encode() applies
    truncate_dim: int | None = None  # components the model keeps by default (Matryoshka); None: all ``dimension``
    max_positions: int | None = None  # the most tokens the model can take (position embeddings); None: unknown
    trust_remote_code: bool = False  # the model was loaded with its own code
    format_version: int = FORMAT_VERSION

    def write(self, folder: Path) -> None:
        write_text(folder / MANIFEST_NAME, json.dumps(asdict(self), indent=2) + "\n")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


HASHES_NAME = ".evalfast-hashes.json"  # sha256 of the folder's graphs, by file name, with the size and mtime hashed


def remembered_sha256(path: Path) -> str:
    """sha256 of the bytes of ``path``, hashed once and remembered beside it by size and modification time, so a
    file replaced in place is hashed again. Where the folder is read-only it is hashed every time."""
    stat = path.stat()
    seen = [stat.st_size, stat.st_mtime_ns]
    memo_path = path.parent / HASHES_NAME
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    entry = memo.get(path.name) if isinstance(memo, dict) else None
    if isinstance(entry, dict) and entry.get("seen") == seen and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    digest = file_sha256(path)
    memo = memo if isinstance(memo, dict) else {}
    memo[path.name] = {"seen": seen, "sha256": digest}
    try:
        write_text(memo_path, json.dumps(memo, indent=2) + "\n")
    except OSError:
        pass  # a read-only export: hash again next time
    return digest


def is_exported(folder: Path) -> bool:
    """True if ``folder`` looks like an evalfast export (it has a manifest)."""
    return (Path(folder) / MANIFEST_NAME).is_file()


def read_manifest(folder: Path) -> Manifest:
    """Read and check an export folder's manifest; missing files or fields are a :class:`ModelError`."""
    folder = Path(folder)
    for name in (MANIFEST_NAME, MODEL_FILE, TOKENIZER_FILE):
        if not (folder / name).is_file():
            raise ModelError(f"{folder}: missing {name}; re-create the folder with `evalfast export MODEL -o {folder}`")
    try:
        raw = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
        raw["parity"] = Parity(**raw["parity"])
        return Manifest(**raw)
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ModelError(
            f"{folder / MANIFEST_NAME}: not a valid evalfast manifest ({err}); re-export with `evalfast export`"
        ) from err
