"""Tiny random-initialised Llama + a word-level tokenizer with a chat template (built in < 1 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

WORDS = [
    "the",
    "patient",
    "has",
    "a",
    "fever",
    "cough",
    "pain",
    "chest",
    "heart",
    "lung",
    "drug",
    "dose",
    "answer",
    "question",
    "option",
    "which",
    "of",
    "following",
    "is",
    "best",
    "next",
    "step",
    "management",
    "diagnosis",
    "treatment",
    "note",
    "dialogue",
    "doctor",
    "yes",
    "no",
    "maybe",
    "A",
    "B",
    "C",
    "D",
    ":",
    ".",
    ",",
    "?",
    "explanation",
    "because",
]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_model(folder: Path, *, vocab_extra: int = 0) -> Path:
    """Save a 2-layer Llama (hidden 32) and its tokenizer in ``folder``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    vocab = {tok: i for i, tok in enumerate(specials + WORDS + ["user", "assistant", "system"])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        eos_token="<|im_end|>",
        bos_token="<|endoftext|>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,  # RoPE: no weights; eval prompts exceed 256
        bos_token_id=vocab["<|endoftext|>"],
        eos_token_id=vocab["<|im_end|>"],
        pad_token_id=vocab["<pad>"],
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama") / "model")
