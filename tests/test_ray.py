"""The Ray engine on a local cluster (127.0.0.1, 2 CPUs): the same results as the local engine, an actor killed
mid-run, finished shards skipped, and the CLI's --engine ray."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from evalfast.cli import cli
from evalfast.data.golden import load_golden
from evalfast.evaluate import evaluate
from evalfast.model.encoder import Encoder

from conftest import HANDWRITTEN

ray = pytest.importorskip("ray", reason="the Ray engine's tests need evalfast[ray]")

from evalfast.search.distributed import RayEngine, embed_on_ray, start_ray  # noqa: E402  (after the skip)


@pytest.fixture(scope="module")
def cluster():
    started = start_ray(None, num_cpus=2)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def handwritten():
    return load_golden(HANDWRITTEN)


def test_ray_engine_gives_the_local_results(cluster, tiny_export, handwritten, tmp_path):
    encoder = Encoder(tiny_export)
    local = evaluate(encoder, handwritten)
    on_ray = evaluate(encoder, handwritten, engine=RayEngine(encoder, tmp_path, actors=2))
    np.testing.assert_array_equal(on_ray.run.doc_ids, local.run.doc_ids)
    np.testing.assert_allclose(on_ray.run.scores, local.run.scores, atol=1e-6)
    assert on_ray.metrics == pytest.approx(local.metrics, abs=1e-9)
    assert on_ray.rag == pytest.approx(local.rag, abs=1e-9)


def test_a_killed_actor_is_restarted_and_the_result_is_complete(cluster, tiny_export, handwritten, tmp_path):
    encoder = Encoder(tiny_export)
    texts = handwritten.doc_texts * 8  # 2,560 texts in 20 shards of 128
    killed = []

    def kill_once(_index, actors):
        if not killed:
            ray.kill(actors[0], no_restart=False)  # as if its worker process died
            killed.append(True)

    sharded = embed_on_ray(encoder, texts, tmp_path / "shards", actors=2, shard_size=128, on_shard=kill_once)
    assert killed and sharded.embedded == 20
    reference = encoder.encode(texts).vectors
    vectors = np.concatenate([np.load(tmp_path / "shards" / f"shard-{i:05d}.npy") for i in range(20)])
    np.testing.assert_allclose(vectors, reference, atol=1e-6)
    again = embed_on_ray(encoder, texts, tmp_path / "shards", actors=2, shard_size=128)
    assert (again.embedded, again.skipped) == (0, 20)  # a second run finds every shard finished


def test_a_stale_shard_is_embedded_again(cluster, tiny_export, handwritten, tmp_path):
    encoder = Encoder(tiny_export)
    embed_on_ray(encoder, handwritten.doc_texts, tmp_path, actors=1, shard_size=100)
    changed = ["something else entirely", *handwritten.doc_texts[1:]]
    rerun = embed_on_ray(encoder, changed, tmp_path, actors=1, shard_size=100)
    assert (rerun.embedded, rerun.skipped) == (1, 3)  # only the shard whose texts changed


def test_cli_engine_ray_matches_local(cluster, tiny_export, tmp_path):
    outputs = {}
    for engine in ("local", "ray"):
        args = ["eval", "-m", str(tiny_export), "-g", str(HANDWRITTEN), "--cache-dir", str(tmp_path / engine),
                "--engine", engine, "--json", str(tmp_path / f"{engine}.json"), "--run", str(tmp_path / f"{engine}.trec")]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        outputs[engine] = json.loads((tmp_path / f"{engine}.json").read_text())["metrics"]
    assert outputs["ray"] == pytest.approx(outputs["local"], abs=1e-9)
    local_ids = [line.split()[:3] for line in (tmp_path / "local.trec").read_text().splitlines()]
    ray_ids = [line.split()[:3] for line in (tmp_path / "ray.trec").read_text().splitlines()]
    assert ray_ids == local_ids
