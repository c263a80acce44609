"""The manifest ``evalfast.json`` that every exported model folder carries, and reading it back."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evalfast.atomic import write_text
from evalfast.errors import ModelError

MANIFEST_NAME = "evalfast.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
OUTPUT_NAME = "sentence_embedding"
SIMILARITIES = ("cosine", "dot")  # what inner product stands for: the similarities a manifest may name
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
    """Read and check an export folder's manifest: missing files, invalid JSON, and fields that are missing, of the
    wrong type or out of range are a :class:`ModelError` naming the file, the field and the fix."""
    folder = Path(folder)
    for name in (MANIFEST_NAME, MODEL_FILE, TOKENIZER_FILE):
        if not (folder / name).is_file():
            raise ModelError(f"{folder}: missing {name}; re-create the folder with `evalfast export MODEL -o {folder}`")
    path = folder / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:  # invalid JSON or UTF-8
        raise ModelError(f"{path}: not valid JSON ({err}); {_reexport(folder, None)}") from err
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: not a JSON object but {_shown(raw)}; {_reexport(folder, None)}")
    fix = _reexport(folder, raw.get("source"))
    version = raw.get("format_version", FORMAT_VERSION)
    if _is_int(version) and version > FORMAT_VERSION:
        raise ModelError(f"{path}: manifest format {version}, newer than this evalfast reads ({FORMAT_VERSION}); "
                         f"upgrade evalfast, or {fix}")
    values = _checked_fields(raw, Manifest, path, fix)
    values["parity"] = Parity(**_checked_fields(values["parity"], Parity, path, fix, "parity."))
    manifest = Manifest(**values)
    _check_values(manifest, path, fix)
    return manifest


def _reexport(folder: Path, source: object) -> str:
    model = source if isinstance(source, str) and source else "MODEL"
    return f"re-export with `evalfast export {model} -o {folder} --overwrite`"


def _shown(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_KINDS = {  # a field's annotation -> (check of the JSON value, what it should be)
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (_is_int, "an integer"),
    "float": (_is_number, "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "dict[str, str]": (lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
                       "an object of strings"),
    "Parity": (lambda v: isinstance(v, dict), "an object"),
}


def _checked_fields(raw: dict, cls: type, path: Path, fix: str, prefix: str = "") -> dict:
    """``raw``'s fields for ``cls`` (a dataclass whose annotations, strings here, name :data:`_KINDS`, optionally
    ``| None``), each of the annotated JSON type; a missing required field or an unknown one is an error."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ModelError(f"{path}: unknown field {prefix + unknown[0]!r}; {fix}")
    for name, spec in fields.items():
        if name not in raw:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ModelError(f"{path}: field {prefix + name!r} is missing; {fix}")
            continue
        kind, optional = str(spec.type).removesuffix(" | None"), str(spec.type).endswith(" | None")
        matches, expected = _KINDS[kind]
        value = raw[name]
        if not (matches(value) or (optional and value is None)):
            raise ModelError(f"{path}: field {prefix + name!r} is {_shown(value)}, expected {expected}"
                             f"{' or null' if optional else ''}; {fix}")
    return dict(raw)


def _check_values(manifest: Manifest, path: Path, fix: str) -> None:
    """Values of the right type that no export writes: sizes that are not positive, an unknown similarity, a
    default prompt that is not among the prompts, a truncation longer than the output."""
    problems = [(name, "a positive integer") for name in ("opset", "max_seq_length", "dimension", "format_version",
                                                          "truncate_dim", "max_positions")
                if getattr(manifest, name) is not None and getattr(manifest, name) < 1]
    if manifest.parity.probe_texts < 0:
        problems.append(("parity.probe_texts", "0 or more"))
    if manifest.similarity not in SIMILARITIES:
        problems.append(("similarity", " or ".join(map(json.dumps, SIMILARITIES))))
    if manifest.default_prompt_name is not None and manifest.default_prompt_name not in manifest.prompts:
        problems.append(("default_prompt_name", "null or one of the names in prompts"))
    if manifest.truncate_dim is not None and manifest.truncate_dim > manifest.dimension:
        problems.append(("truncate_dim", f"at most dimension ({manifest.dimension})"))
    if problems:
        name, expected = problems[0]
        value = getattr(manifest.parity if name.startswith("parity.") else manifest, name.removeprefix("parity."))
        raise ModelError(f"{path}: field {name!r} is {_shown(value)}, expected {expected}; {fix}")
