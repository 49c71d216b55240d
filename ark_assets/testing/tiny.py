"""Tiny random-weight models of the real architectures, for tests and throughput benchmarks.

Throughput does not depend on the weights, and the code paths (LoRA, trl, saving, reloading,
generating) are the real ones, so a 2-layer Qwen2 with the exact Qwen2.5 tokenizer exercises
training in seconds, and a Qwen2.5-1.5B-shaped model measures what a GPU would sustain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, Qwen2Config

from ark_assets.lib.training.render import chat_template
from ark_assets.lib.training.tokenizer import build_qwen25_tokenizer

# Qwen2.5-*-Instruct shapes (hidden, intermediate, layers, heads, kv heads, tied embeddings).
QWEN25_SHAPES: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True),
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                 num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                 num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True),
}  # fmt: skip


def qwen2_config(shape: str = "tiny") -> Qwen2Config:
    return Qwen2Config(
        vocab_size=151936,
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        rms_norm_eps=1e-6,
        bos_token_id=151643,
        eos_token_id=151645,
        pad_token_id=151643,
        **QWEN25_SHAPES[shape],
    )


def save_random_qwen2(directory: Path, shape: str = "tiny", seed: int = 0) -> Path:
    """A random-weight Qwen2 of ``shape`` with the Qwen2.5 tokenizer and our tool template."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(qwen2_config(shape))
    model.save_pretrained(directory, safe_serialization=True)
    build_qwen25_tokenizer(chat_template()).save_pretrained(directory)
    return directory


BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def save_random_bert(directory: Path, text: str, seed: int = 0) -> Path:
    """A random-weight 2-layer BERT whose WordPiece vocabulary is the characters of ``text``
    (the rest become ``[UNK]``): the shape BERTScore reads, in a second."""
    from transformers import BertConfig, BertModel, BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    chars = sorted({c for c in text.lower() if not c.isspace()})
    (directory / "vocab.txt").write_text("\n".join([*BERT_SPECIAL_TOKENS, *chars]) + "\n")
    tokenizer = BertTokenizer(str(directory / "vocab.txt"), model_max_length=128)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(BERT_SPECIAL_TOKENS) + len(chars), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    BertModel(config).save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory
