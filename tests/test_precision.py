"""Precision variants: built once beside the export, close to fp32, refused where they cannot run."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from evalfast.errors import EvalfastError
from evalfast.model.encoder import Encoder, EncoderConfig
from evalfast.model.parity import one_minus_cos
from evalfast.model.precision import check_precision, variant_file
from evalfast.model.variants import ensure_variant

TEXTS = ["a haunted lighthouse", "a recipe from my grandmother", "robots learning to paint", "a cozy mystery"]


@pytest.fixture(scope="module")
def tiny_copy(tiny_export, tmp_path_factory):
    folder = tmp_path_factory.mktemp("variants") / "tiny"
    shutil.copytree(tiny_export, folder)
    return folder


def test_int8_variant_is_built_once_and_stays_close_to_fp32(tiny_copy):
    variant = ensure_variant(tiny_copy, "int8")
    assert variant.path == variant_file(tiny_copy, "int8") and variant.path.is_file()
    built = variant.path.stat().st_mtime_ns
    assert ensure_variant(tiny_copy, "int8").path.stat().st_mtime_ns == built
    exact = Encoder(tiny_copy).encode(TEXTS).vectors
    int8 = Encoder(tiny_copy, EncoderConfig(precision="int8")).encode(TEXTS).vectors
    gaps = one_minus_cos(exact, int8)
    assert 0 < gaps.max() < 0.05  # quantised: not identical, but close
    assert variant.parity_vs_fp32.max_one_minus_cos < 0.05
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)


def test_precisions_have_distinct_cache_fingerprints(tiny_copy):
    ensure_variant(tiny_copy, "int8")
    assert Encoder(tiny_copy).fingerprint != Encoder(tiny_copy, EncoderConfig(precision="int8")).fingerprint


@pytest.mark.parametrize("precision, device, message", [
    ("fp16", "cpu", "runs on cuda"),
    ("int8", "cuda", "runs on cpu"),
    ("bf16", "cpu", "use one of"),
])
def test_unsuitable_precision_is_refused(precision, device, message):
    with pytest.raises(EvalfastError, match=message):
        check_precision(precision, device)


def test_encoder_without_the_variant_says_how_to_build_it(tiny_export, tmp_path):
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_export, folder)
    for leftover in folder.glob("model.int8.*"):
        leftover.unlink()
    with pytest.raises(EvalfastError, match="no int8 variant"):
        Encoder(folder, EncoderConfig(precision="int8"))
