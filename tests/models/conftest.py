"""Fixtures for model tests: a tiny random-initialised Llama built from a config (no download)."""

from __future__ import annotations

from pathlib import Path

import pytest

CORPUS = [
    "Question: Which drug is first line for type 2 diabetes?\nA. Metformin\nB. Insulin\n"
    "C. Aspirin\nD. Warfarin\nAnswer: A",
    "Question: What does HbA1c measure? Answer: average blood glucose over three months.",
    "The patient presented with chest pain, dyspnoea and sweating; troponin was raised.",
    "yes no maybe A B C D E hypertension myocardial infarction sepsis pneumonia",
]


def build_tiny_llama(folder: Path, *, seed: int = 0) -> Path:
    """Save a 2-layer random Llama (+ a byte-level BPE tokenizer trained here) to ``folder``."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        CORPUS * 4, vocab_size=400, min_frequency=1, special_tokens=["<s>", "</s>", "<pad>"]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    # random init is tiny in scale: sharpen it so log-probs differ visibly between options
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(3.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
