"""Model conventions across a matrix of tiny models (tests/tiny_models.py), checked against outside references:
sentence-transformers' own encode_query / encode_document / encode / similarity for the vectors, pytrec_eval for
the metrics. Nothing here compares evalfast with numbers evalfast computed itself, except where the point is that
two evalfast paths agree (an embedding cache against none), and those paths are checked against the references too.

Every model is built and exported once per module (the ``built`` fixture); the whole file runs in well under a
minute on two CPU cores."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval
from sentence_transformers import SentenceTransformer
from tiny_models import HIDDEN, TINY_MODELS, build_bert_mean, build_bert_prompts

from evalfast.data.golden import load_golden
from evalfast.errors import EvalfastError, ModelError
from evalfast.evaluate import EvalConfig, evaluate
from evalfast.model.cache import EmbeddingCache
from evalfast.model.encoder import Encoder, EncoderConfig
from evalfast.model.export import export_model
from evalfast.model.manifest import Manifest
from evalfast.model.parity import one_minus_cos

from conftest import TINY_MAX_SEQ_LENGTH, write_file


def build_bert_cls_sharp(folder: Path) -> Path:
    """bert-cls with weights drawn 25 times wider (initializer_range 0.5): the [CLS] state of TINY_MODELS'
    bert-cls barely depends on the text (any two texts' vectors are within 1 - cos = 3e-6, the 40 documents' cosines
    to a query all within 2e-5), so its rankings are float32 noise; this one's spread like a trained model's."""
    from tiny_models import _minilm_tokenizer_dir, _save_sentence_transformer, _tiny
    from transformers import BertConfig, BertModel

    bert = _tiny(BertModel, BertConfig, vocab_size=30522, initializer_range=0.5)
    return _save_sentence_transformer(folder, bert, _minilm_tokenizer_dir(), "cls")


BUILDERS = {**TINY_MODELS, "bert-cls-sharp": build_bert_cls_sharp}
ALL_MODELS = sorted(BUILDERS)
# metrics need rankings that float32 rounding cannot reorder: bert-cls's cannot (see build_bert_cls_sharp)
RANKING_MODELS = [name for name in ALL_MODELS if name != "bert-cls"]
PARITY = 1e-4  # max 1 - cos, and the dot model's max relative difference of lengths
METRIC_TOLERANCE = 1e-6
LONG_TEXT = " ".join(f"Sentence {i} of a long passage about the river, the harbour and the storm that came in "
                     "from the sea." for i in range(12))  # far more than 24 tokens for every tokenizer
TEXTS = [
    "a",
    "The haunted lighthouse stood on the rocks at the end of the bay.",
    "   leading and trailing spaces   ",
    " one leading space",
    "one trailing space ",
    "\ttabs\tand\nnew lines\n",
    "¿Dónde está la biblioteca? La mañana era fría y el café estaba caliente.",
    "Die Straße führt über die Brücke zum Bahnhof; für Müller ist das Wetter schön.",
    "日本語の文。東京の図書館で本を読みました。",
    "Привет, как дела? Это короткий текст о море.",
    "UPPER CASE QUERY ABOUT THE STORM AND 2024",
    LONG_TEXT,
]
LONGER_THAN_8 = [  # all longer than 8 tokens for every tokenizer, of different lengths
    "The haunted lighthouse stood on the rocks at the end of the bay, and every night its keeper told a story.",
    "She read the book in the library and wrote a letter to her brother.",
    "   Search engines rank documents by how well they answer a query.   ",
    "¿Dónde está la biblioteca? Está al lado de la estación, cerca del parque.",
    LONG_TEXT,
]


# ---------------------------------------------------------------------------------------------- models, references


@dataclass
class Built:
    """A tiny model: its sentence-transformers folder, its export and the export's manifest."""

    name: str
    st_folder: Path
    export: Path
    manifest: Manifest

    def st(self) -> SentenceTransformer:
        """A freshly loaded sentence-transformers model (callers may change its settings)."""
        return SentenceTransformer(str(self.st_folder), device="cpu", local_files_only=True)

    def encoder(self, **settings) -> Encoder:
        return Encoder(self.export, EncoderConfig(threads=1, **settings))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``built(name)``: BUILDERS[name] built and exported, once per module."""
    done: dict[str, Built] = {}

    def get(name: str) -> Built:
        if name not in done:
            folder = tmp_path_factory.mktemp(name)
            st_folder = BUILDERS[name](folder)
            manifest = export_model(str(st_folder), folder / "export")
            done[name] = Built(name, st_folder, folder / "export", manifest)
        return done[name]

    return get


@pytest.fixture(scope="module")
def st_models(built):
    """``st_models(name)``: one shared, unmodified SentenceTransformer per model (read-only use)."""
    loaded: dict[str, SentenceTransformer] = {}

    def get(name: str) -> SentenceTransformer:
        if name not in loaded:
            loaded[name] = built(name).st()
        return loaded[name]

    return get


def gaps(reference: np.ndarray, ours: np.ndarray) -> tuple[float, float]:
    """(max 1 - cos, max relative difference of lengths) of ``ours`` against ``reference``, row by row."""
    reference_norms = np.linalg.norm(reference.astype(np.float64), axis=1)
    norm_error = np.abs(np.linalg.norm(ours.astype(np.float64), axis=1) - reference_norms) / reference_norms
    return float(one_minus_cos(reference, ours).max()), float(norm_error.max())


def assert_unit_length(vectors: np.ndarray) -> None:
    np.testing.assert_allclose(np.linalg.norm(vectors.astype(np.float64), axis=1), 1.0, atol=1e-5)


# ------------------------------------------------------------------------------------------------ the golden set

_RNG = random.Random(20240917)
_SUBJECTS = ["The keeper", "A storm", "The ships", "The town", "My brother", "The library", "A river", "The harbour",
             "Search engines", "The weather", "El niño", "La biblioteca", "The museum", "Der Bahnhof", "The forest",
             "Her letter", "The old café", "A passage"]
_VERBS = ["waited for", "turned back to", "wrote about", "walked along", "ranked", "found", "read", "visited",
          "told a story about", "handled", "forgot", "painted", "measured", "sang about"]
_OBJECTS = ["the morning", "the rocks at the end of the bay", "numbers such as 42 and 2024", "rain, wind and snow",
            "the coming season", "a letter to the station", "the park near the plaza", "the green trees",
            "tables, dates and prices", "leading and trailing spaces", "la canción en español", "die Brücke",
            "東京の図書館", "the sunset over the river", "the names of products", "a question about the weather"]


def _sentence() -> str:
    return f"{_RNG.choice(_SUBJECTS)} {_RNG.choice(_VERBS)} {_RNG.choice(_OBJECTS)}."


def _make_golden():
    docs = []
    for i in range(40):
        title = "" if i % 9 == 0 else " ".join(_RNG.sample(["Lighthouse", "Storm", "Harbour", "Library", "River",
                                                            "Museum", "Café", "Weather", "Letters", "Bahnhof",
                                                            "Forest", "Numbers"], _RNG.randint(1, 3)))
        text = " ".join(_sentence() for _ in range(_RNG.randint(1, 3))) + f" Chapter {i}."
        if i % 7 == 3:
            text = "  " + text + " "  # the document's text is (title + " " + text).strip()
        docs.append((f"doc-{i:02d}", title, text))
    queries = [(f"q{j:02d}", f"{_RNG.choice(_VERBS)} {_RNG.choice(_OBJECTS)} {j}") for j in range(12)]
    queries[3] = ("q03", "  ¿Dónde está la biblioteca?  ")
    queries[7] = ("q07", "東京の図書館で本を読みました")
    qrels: dict[str, dict[str, int]] = {}
    for qid, _ in queries:
        judged = _RNG.sample([d[0] for d in docs], 7)
        grades = [2, 2, 1, 1, 1, 0, 0]
        _RNG.shuffle(grades)  # every query has relevant documents, at two grades
        qrels[qid] = dict(zip(judged, grades))
    return docs, queries, qrels


DOCS, QUERIES, QRELS = _make_golden()
DOC_TEXTS = [(title + " " + text).strip() for _, title, text in DOCS]
QUERY_TEXTS = [text for _, text in QUERIES]
PYTREC_MEASURES = {"ndcg_cut.10", "map_cut.10", "recall.5", "P.5", "recip_rank"}
OURS_FOR_PYTREC = {"ndcg@10": "ndcg_cut_10", "map@10": "map_cut_10", "recall@5": "recall_5",
                   "precision@5": "P_5", "mrr@100": "recip_rank"}  # 40 documents: mrr@100 is trec's recip_rank


@pytest.fixture(scope="module")
def golden_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("golden")
    write_file(folder / "corpus.jsonl", "".join(json.dumps({"_id": i, "title": t, "text": x}, ensure_ascii=False) + "\n"
                                                for i, t, x in DOCS))
    write_file(folder / "queries.jsonl", "".join(json.dumps({"_id": i, "text": x}, ensure_ascii=False) + "\n"
                                                 for i, x in QUERIES))
    write_file(folder / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t{g}\n" for q, judged in QRELS.items() for d, g in judged.items()))
    return folder


@pytest.fixture(scope="module")
def golden(golden_folder):
    loaded = load_golden(golden_folder)
    assert loaded.doc_texts == DOC_TEXTS and loaded.query_texts == QUERY_TEXTS  # the reference embeds these texts
    return loaded


def st_scores(st: SentenceTransformer, query_kwargs: dict | None = None, doc_kwargs: dict | None = None) -> np.ndarray:
    """(n_queries, n_docs) scores by sentence-transformers: its query and document vectors, its similarity."""
    q = st.encode_query(QUERY_TEXTS, convert_to_tensor=True, **(query_kwargs or {}))
    d = st.encode_document(DOC_TEXTS, convert_to_tensor=True, **(doc_kwargs or {}))
    return st.similarity(q, d).double().numpy()


def pytrec_means(scores: np.ndarray) -> dict[str, float]:
    """pytrec_eval's mean of each measure over the queries, for a run of every document scored by ``scores``."""
    run = {qid: {DOCS[j][0]: float(scores[i, j]) for j in range(len(DOCS))} for i, (qid, _) in enumerate(QUERIES)}
    per_query = pytrec_eval.RelevanceEvaluator(QRELS, PYTREC_MEASURES).evaluate(run)
    assert len(per_query) == len(QUERIES)
    measures = next(iter(per_query.values())).keys()
    return {m: float(np.mean([values[m] for values in per_query.values()])) for m in measures}


def assert_metrics_match(ours: dict[str, float], reference: dict[str, float]) -> None:
    for our_name, trec_name in OURS_FOR_PYTREC.items():
        assert ours[our_name] == pytest.approx(reference[trec_name], abs=METRIC_TOLERANCE), our_name


# --------------------------------------------------------------------------- 1. vectors: parity with sentence-transformers


@pytest.mark.parametrize("name", ALL_MODELS)
def test_vectors_match_sentence_transformers(name, built, st_models):
    model, st = built(name), st_models(name)
    encoder = model.encoder()
    for role, reference in (("query", st.encode_query(TEXTS)), ("document", st.encode_document(TEXTS)),
                            ("plain", st.encode(TEXTS))):
        encoded = encoder.encode(encoder.prompted(TEXTS, role))
        ours = encoded.vectors
        assert ours.dtype == np.float32
        assert ours.shape == reference.shape == (len(TEXTS), encoder.dimension), role
        max_one_minus_cos, norm_error = gaps(reference, ours)
        assert max_one_minus_cos <= PARITY, (role, max_one_minus_cos)
        if model.manifest.similarity == "dot":
            assert norm_error <= PARITY, (role, norm_error)
        else:
            assert_unit_length(ours)
        # each vector is nearest to its own text's reference: a check that does not depend on how far apart the
        # model puts texts (bert-cls and bert-lasttoken put some within 1 - cos = 3e-6 of each other)
        cross = one_minus_cos(np.repeat(ours, len(TEXTS), 0), np.tile(reference, (len(TEXTS), 1)))
        assert (cross.reshape(len(TEXTS), len(TEXTS)).argmin(axis=1) == np.arange(len(TEXTS))).all(), role
        assert encoded.n_truncated >= 1  # LONG_TEXT was cut at the model's 24 tokens, as sentence-transformers cuts it
    assert encoder.dimension == {"bert-matryoshka": 16, "bert-dense": 16}.get(name, HIDDEN)


# ----------------------------------------------------------------------------------- 2. metrics against pytrec_eval


@pytest.mark.parametrize("name", RANKING_MODELS)
def test_metrics_match_pytrec_eval_on_sentence_transformers_vectors(name, built, st_models, golden):
    reference = pytrec_means(st_scores(st_models(name)))
    result = evaluate(built(name).encoder(), golden, EvalConfig(ks=(1, 3, 5, 10, 100)))
    assert result.counts["queries_evaluated"] == len(QUERIES)
    assert_metrics_match(result.metrics, reference)
    assert 0 < result.metrics["ndcg@10"] < 1  # neither empty nor perfect, so the comparison means something


# ------------------------------------------------------------------------------------------------ 3a. prompts


def test_prompts_are_read_and_resolved(built, st_models):
    model = built("bert-prompts")
    st = st_models("bert-prompts")
    assert model.manifest.prompts == {"query": "query: ", "document": "passage: "}
    assert model.encoder().prompts == {"query": "query: ", "document": "passage: ", "plain": ""}

    texts = TEXTS[:6]
    cases = [  # (EncoderConfig settings, the query prompt it should resolve to, sentence-transformers' equivalent)
        ({}, "query: ", st.encode_query(texts)),
        ({"query_prompt": ""}, "", st.encode_query(texts, prompt="")),
        ({"query_prompt": "document"}, "passage: ", st.encode_query(texts, prompt_name="document")),
        ({"query_prompt": "search_query: "}, "search_query: ", st.encode_query(texts, prompt="search_query: ")),
    ]
    for settings, prompt, reference in cases:
        encoder = model.encoder(**settings)
        assert encoder.prompts["query"] == prompt, settings
        assert encoder.prompted(["x", " y"], "query") == [prompt + "x", prompt + " y"], settings
        assert encoder.prompts["document"] == "passage: "  # untouched by the query's choice
        assert gaps(reference, encoder.encode(encoder.prompted(texts, "query")).vectors)[0] <= PARITY, settings
    # the three references differ, so matching each one shows the choice was applied
    assert gaps(cases[0][2], cases[1][2])[0] > 1e-3 and gaps(cases[0][2], cases[3][2])[0] > 1e-3

    without = model.encoder(document_prompt="")
    assert without.prompts["document"] == ""
    assert gaps(st.encode_document(texts, prompt=""), without.encode(without.prompted(texts, "document")).vectors)[0] <= PARITY


@pytest.mark.parametrize("typo", ["qurey", "Query", "docs"])
def test_unknown_prompt_name_is_refused(built, typo):
    model = built("bert-prompts")
    with pytest.raises(ModelError, match=typo):
        model.encoder(query_prompt=typo)
    with pytest.raises(ModelError, match=typo):
        model.encoder(document_prompt=typo)


def test_metrics_with_and_without_prompts_match_pytrec_eval(built, st_models, golden):
    model, st = built("bert-prompts"), st_models("bert-prompts")
    prompted = evaluate(model.encoder(), golden)
    plain = evaluate(model.encoder(query_prompt="", document_prompt=""), golden)
    assert_metrics_match(prompted.metrics, pytrec_means(st_scores(st)))
    assert_metrics_match(plain.metrics, pytrec_means(st_scores(st, {"prompt": ""}, {"prompt": ""})))
    assert not np.array_equal(prompted.run.doc_ids, plain.run.doc_ids)  # the prompts change the rankings...
    assert any(abs(prompted.metrics[m] - plain.metrics[m]) > 1e-3 for m in OURS_FOR_PYTREC)  # ...and the metrics


def test_default_prompt_name_applies_to_plain_texts(built, tmp_path):
    """A model with default_prompt_name "query": encode() prepends "query: ", encode_document "passage: "."""
    st_folder = build_bert_prompts(tmp_path / "model")
    config_path = st_folder / "config_sentence_transformers.json"
    config = json.loads(config_path.read_text())
    config["default_prompt_name"] = "query"
    config_path.write_text(json.dumps(config))
    manifest = export_model(str(st_folder), tmp_path / "export")
    assert manifest.default_prompt_name == "query"
    st = SentenceTransformer(str(st_folder), device="cpu", local_files_only=True)
    encoder = Encoder(tmp_path / "export", EncoderConfig(threads=1))
    assert encoder.prompts == {"query": "query: ", "document": "passage: ", "plain": "query: "}
    for role, reference in (("plain", st.encode(TEXTS)), ("document", st.encode_document(TEXTS)),
                            ("query", st.encode_query(TEXTS))):
        assert gaps(reference, encoder.encode(encoder.prompted(TEXTS, role)).vectors)[0] <= PARITY, role


# ------------------------------------------------------------------------------------------- 3b. dot similarity


def test_dot_model_ranks_by_dot_product(built, st_models, golden):
    model, st = built("bert-dot"), st_models("bert-dot")
    assert model.manifest.similarity == "dot" and not model.manifest.normalize
    encoder = model.encoder()
    vectors = encoder.encode(TEXTS).vectors
    norms = np.linalg.norm(vectors, axis=1)
    assert np.abs(norms - 1).max() > 0.1 and norms.std() > 1e-3  # raw lengths, not unit vectors

    q, d = st.encode_query(QUERY_TEXTS), st.encode_document(DOC_TEXTS)
    dot = q.astype(np.float64) @ d.astype(np.float64).T
    cosine = dot / np.outer(np.linalg.norm(q, axis=1), np.linalg.norm(d, axis=1))
    by_dot, by_cosine = np.argsort(-dot, axis=1, kind="stable"), np.argsort(-cosine, axis=1, kind="stable")
    result = evaluate(encoder, golden)
    n_docs = len(DOCS)
    assert result.run.doc_ids.shape == (len(QUERIES), n_docs)
    np.testing.assert_array_equal(result.run.doc_ids, by_dot)
    np.testing.assert_allclose(result.run.scores, np.take_along_axis(dot, by_dot, 1), rtol=1e-4)
    assert (by_dot != by_cosine).any(axis=1).sum() >= 1  # lengths matter: cosine would rank some query differently
    assert_metrics_match(result.metrics, pytrec_means(dot))
    assert np.allclose(st_scores(st), dot, rtol=1e-5)  # the model's own similarity is the dot product


# --------------------------------------------------------------------------------------------- 3c. Matryoshka


def test_matryoshka_dimension(built, st_models):
    model, st = built("bert-matryoshka"), st_models("bert-matryoshka")
    assert model.manifest.truncate_dim == 16 and model.manifest.dimension == HIDDEN
    default = model.encoder()
    assert default.dimension == 16 and default.encode(TEXTS).vectors.shape == (len(TEXTS), 16)

    for dim in (8, 16, HIDDEN):
        encoder = model.encoder(dim=dim)
        ours = encoder.encode(TEXTS).vectors
        reference = st.encode(TEXTS, truncate_dim=dim)
        assert ours.shape == reference.shape == (len(TEXTS), dim)
        assert gaps(reference, ours)[0] <= PARITY, dim
        assert_unit_length(ours)  # renormalised after the cut (sentence-transformers leaves them shorter)
    # the cut is a prefix: 8 components are not 16 renormalised another way
    assert gaps(st.encode(TEXTS, truncate_dim=16)[:, :8], model.encoder(dim=8).encode(TEXTS).vectors)[0] <= PARITY


@pytest.mark.parametrize("dim", [0, -1, HIDDEN + 1, 1000])
def test_matryoshka_dimension_out_of_range_is_refused(built, dim):
    with pytest.raises(EvalfastError, match="dim"):
        built("bert-matryoshka").encoder(dim=dim)


def test_matryoshka_metrics_at_a_smaller_dimension(built, st_models, golden):
    model, st = built("bert-matryoshka"), st_models("bert-matryoshka")
    result = evaluate(model.encoder(dim=8), golden)
    assert_metrics_match(result.metrics, pytrec_means(st_scores(st, {"truncate_dim": 8}, {"truncate_dim": 8})))


# ------------------------------------------------------------------------------------------- 3d. max_seq_length


@pytest.mark.parametrize("name", ["bert-mean", "mpnet", "xlmr-sentencepiece", "decoder-bpe-lasttoken"])
def test_max_seq_length_override(name, built):
    model = built(name)
    st = model.st()  # a fresh one: its max_seq_length is changed below
    assert model.manifest.max_seq_length == TINY_MAX_SEQ_LENGTH
    assert model.manifest.max_positions and model.manifest.max_positions >= TINY_MAX_SEQ_LENGTH
    full = st.encode_document(LONGER_THAN_8)
    for length in (8, model.manifest.max_positions):
        st.max_seq_length = length
        reference = st.encode_document(LONGER_THAN_8)
        encoder = model.encoder(max_seq_length=length)
        assert encoder.max_seq_length == length
        encoded = encoder.encode(encoder.prompted(LONGER_THAN_8, "document"))
        assert gaps(reference, encoded.vectors)[0] <= PARITY, length
        if length == 8:
            assert encoded.n_truncated == len(LONGER_THAN_8)
            assert one_minus_cos(full, reference).min() > 1e-4  # 8 tokens do change every vector
        else:
            assert encoded.n_truncated == 1  # only LONG_TEXT is longer than the model's positions

    with pytest.raises(EvalfastError, match="max-seq-length"):
        model.encoder(max_seq_length=model.manifest.max_positions + 1)
    with pytest.raises(EvalfastError, match="max-seq-length"):
        model.encoder(max_seq_length=0)


def test_max_positions_of_offset_position_models(built):
    """RoBERTa-style models (XLM-R, MPNet) start their positions after the padding id: 64 - (1 + 1) tokens."""
    assert built("xlmr-sentencepiece").manifest.max_positions == 62
    assert built("mpnet").manifest.max_positions == 62
    assert built("bert-mean").manifest.max_positions == 64


# ------------------------------------------------------------------------------------------- 3e. the cache key


def test_fingerprint_changes_with_what_the_vectors_depend_on(built):
    matryoshka, mean = built("bert-matryoshka"), built("bert-mean")
    assert matryoshka.encoder().fingerprint != matryoshka.encoder(dim=8).fingerprint
    assert mean.encoder().fingerprint != mean.encoder(dim=8).fingerprint
    assert mean.encoder(max_seq_length=24).fingerprint != mean.encoder(max_seq_length=8).fingerprint
    assert mean.encoder().fingerprint != built("bert-max").encoder().fingerprint  # another graph
    # bert-matryoshka is bert-mean's graph with truncate_dim 16 in its config: at all 32 components it computes
    # exactly what bert-mean does, so sharing its cached vectors is right
    assert mean.encoder().fingerprint == matryoshka.encoder(dim=HIDDEN).fingerprint
    assert mean.encoder().fingerprint == mean.encoder().fingerprint  # else the cache would never hit


def test_a_shared_cache_never_serves_stale_vectors(built, st_models, golden, tmp_path):
    caches: dict[str, EmbeddingCache] = {}

    def cached(encoder: Encoder) -> EmbeddingCache:  # one cache per fingerprint, shared by every encoder that has it
        return caches.setdefault(encoder.fingerprint, EmbeddingCache(tmp_path, encoder.fingerprint))

    prompts, st = built("bert-prompts"), st_models("bert-prompts")
    with_prompts, without = prompts.encoder(), prompts.encoder(query_prompt="", document_prompt="")
    first = evaluate(with_prompts, golden, cache=cached(with_prompts))
    second = evaluate(without, golden, cache=cached(without))
    again = evaluate(with_prompts, golden, cache=cached(with_prompts))
    assert again.embedding["cached"] == len(DOCS) + len(QUERIES)  # the cache was really used...
    for result, uncached, reference in (
            (first, evaluate(with_prompts, golden), st_scores(st)),
            (second, evaluate(without, golden), st_scores(st, {"prompt": ""}, {"prompt": ""})),
            (again, evaluate(with_prompts, golden), st_scores(st))):
        assert result.metrics == uncached.metrics  # ...and changed nothing
        np.testing.assert_array_equal(result.run.doc_ids, uncached.run.doc_ids)
        assert_metrics_match(result.metrics, pytrec_means(reference))
    assert first.metrics != second.metrics

    matryoshka, mst = built("bert-matryoshka"), st_models("bert-matryoshka")
    evaluate(matryoshka.encoder(), golden, cache=cached(matryoshka.encoder()))
    small = matryoshka.encoder(dim=8)
    result = evaluate(small, golden, cache=cached(small))
    assert result.run.scores.shape[0] == len(QUERIES)
    assert_metrics_match(result.metrics, pytrec_means(st_scores(mst, {"truncate_dim": 8}, {"truncate_dim": 8})))


# ---------------------------------------------------------------------------------------- 3f. refused at export


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def assert_export_refused(st_folder: Path, tmp_path: Path, match: str) -> None:
    """Exporting ``st_folder`` raises ModelError matching ``match`` and leaves nothing behind."""
    out_parent = tmp_path / "exports"
    out_parent.mkdir()
    with pytest.raises(ModelError, match=match):
        export_model(str(st_folder), out_parent / "out")
    assert list(out_parent.iterdir()) == []


def test_pooling_without_prompt_tokens_is_refused(tmp_path):
    st_folder = build_bert_prompts(tmp_path / "model")
    _edit_json(st_folder / "1_Pooling" / "config.json", include_prompt=False)
    assert SentenceTransformer(str(st_folder), device="cpu")[1].include_prompt is False  # the edit took
    assert_export_refused(st_folder, tmp_path, "include_prompt")


@pytest.mark.parametrize("similarity", ["euclidean", "manhattan"])
def test_unsupported_similarity_is_refused(tmp_path, similarity):
    st_folder = build_bert_mean(tmp_path / "model")
    _edit_json(st_folder / "config_sentence_transformers.json", similarity_fn_name=similarity)
    assert SentenceTransformer(str(st_folder), device="cpu").similarity_fn_name == similarity
    assert_export_refused(st_folder, tmp_path, similarity)


# ---------------------------------------------------------------------------------------- 3g. trust_remote_code

CUSTOM_CODE = '''
import torch
from transformers import BertConfig, BertModel


class CustomBertConfig(BertConfig):
    model_type = "{model_type}"


class CustomBertModel(BertModel):
    """BERT whose token states are bent by tanh, so that its vectors differ from plain BertModel's."""

    config_class = CustomBertConfig

    def forward(self, *args, **kwargs):
        output = super().forward(*args, **kwargs)
        output.last_hidden_state = torch.tanh(2.0 * output.last_hidden_state)
        return output
'''


def _custom_code_model(folder: Path, model_type: str) -> Path:
    """bert-mean whose transformer folder (the sentence-transformers folder itself) ships modeling_custom.py and
    names it in config.json's auto_map; ``model_type`` other than "bert" also maps the config class, so that
    transformers has no built-in class to fall back on. The folder's name is unique to ``model_type``: transformers
    imports the code as a module named after it."""
    st_folder = build_bert_mean(folder).rename(folder / f"evalfast_test_remote_code_{model_type.replace('-', '_')}")
    auto_map = {"AutoModel": "modeling_custom.CustomBertModel"}
    if model_type != "bert":
        auto_map["AutoConfig"] = "modeling_custom.CustomBertConfig"
    _edit_json(st_folder / "config.json", auto_map=auto_map, model_type=model_type)
    write_file(st_folder / "modeling_custom.py", CUSTOM_CODE.format(model_type=model_type))
    return st_folder


@pytest.mark.parametrize("model_type", ["custom-bert", "bert"])
def test_remote_code_needs_trust(tmp_path, model_type):
    """A model whose config names its own code is refused without trust_remote_code, whether or not transformers
    has a built-in class for its model_type (with "bert" it would otherwise silently run plain BertModel, not
    the model's code)."""
    assert_export_refused(_custom_code_model(tmp_path / "model", model_type), tmp_path, "--trust-remote-code")


@pytest.mark.parametrize("model_type", ["custom-bert", "bert"])
def test_remote_code_exports_when_trusted(tmp_path, model_type, built, st_models):
    st_folder = _custom_code_model(tmp_path / "model", model_type)
    manifest = export_model(str(st_folder), tmp_path / "export", trust_remote_code=True)
    assert manifest.trust_remote_code is True
    assert manifest.parity.max_one_minus_cos <= PARITY
    st = SentenceTransformer(str(st_folder), device="cpu", local_files_only=True, trust_remote_code=True)
    assert type(st[0].auto_model).__name__ == "CustomBertModel"
    reference = st.encode_document(TEXTS)
    ours = Encoder(tmp_path / "export", EncoderConfig(threads=1)).encode(TEXTS).vectors
    assert gaps(reference, ours)[0] <= PARITY
    plain = st_models("bert-mean").encode_document(TEXTS)  # the same weights without the custom code
    assert gaps(plain, ours)[0] > 1e-3  # so the export ran the model's own code


# ---------------------------------------------------------------------------------------- 3h. the command line

@pytest.mark.parametrize("role, options, st_call", [
    ("query", [], "encode_query"),
    ("document", [], "encode_document"),
    ("query", ["--query-prompt", ""], "encode"),
])
def test_embed_command_applies_the_roles_prompt(built, st_models, tmp_path, role, options, st_call):
    from click.testing import CliRunner

    from evalfast.cli import cli

    model = built("bert-prompts")
    lines = tmp_path / "texts.txt"
    lines.write_text("haunted lighthouse\n  a cozy mystery \n", encoding="utf-8")
    out = tmp_path / "vectors.npy"
    result = CliRunner().invoke(cli, ["embed", "-m", str(model.export), "-i", str(lines), "-o", str(out), "--role",
                                      role, *options, "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    reference = getattr(st_models("bert-prompts"), st_call)(["haunted lighthouse", "  a cozy mystery "])
    assert gaps(reference, np.load(out))[0] <= PARITY


def test_embed_command_refuses_a_plain_prompt_for_another_role(built, tmp_path):
    from click.testing import CliRunner

    from evalfast.cli import cli

    lines = tmp_path / "texts.txt"
    lines.write_text("x\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["embed", "-m", str(built("bert-prompts").export), "-i", str(lines), "-o",
                                      str(tmp_path / "v.npy"), "--role", "query", "--prompt", "q: "])
    assert result.exit_code == 2 and "--query-prompt" in result.output and not (tmp_path / "v.npy").exists()
