"""The ``transformers`` backend: a local Hugging Face chat model, in process.

Greedy decoding of the chat-templated messages; the teacher extracts the JSON from the text,
validates it and retries with a repair message. One generation at a time (the model is shared
and CPU/GPU-bound), so the teacher's concurrency is 1 with this backend. Models load from a
local path only: nothing is downloaded.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ark_assets.lib.synthesis.models import TeacherIdentity
from ark_assets.lib.synthesis.teacher import Completion, TeacherRequest, Usage


class TransformersBackend:
    max_concurrency = 1

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        max_new_tokens: int = 512,
        generation: Mapping[str, Any] | None = None,
    ) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self._max_new_tokens = max_new_tokens
        # Extra ``generate`` arguments: repetition_penalty, a logits processor, constraints.
        self._generation = dict(generation or {})
        self._lock = threading.Lock()
        self.identity = TeacherIdentity(
            backend="transformers",
            model=name,
            note=f"local Hugging Face chat model {name}, greedy decoding, in process",
        )

    @classmethod
    def from_path(
        cls, path: str, *, device: str = "cpu", max_new_tokens: int = 512
    ) -> TransformersBackend:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        # Any: transformers' stubs type .to() through a decorator mypy cannot follow.
        model: Any = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
        model.to(device)
        model.eval()
        return cls(model, tokenizer, name=path, max_new_tokens=max_new_tokens)

    def complete(self, request: TeacherRequest[Any]) -> Completion:
        import torch

        with self._lock, torch.inference_mode():
            inputs = self._tokenizer.apply_chat_template(
                request.messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            ).to(self._model.device)
            prompt_length = inputs["input_ids"].shape[1]
            pad = self._tokenizer.pad_token_id
            output = self._model.generate(
                **inputs,
                max_new_tokens=self._max_new_tokens,
                do_sample=False,
                pad_token_id=pad if pad is not None else self._tokenizer.eos_token_id,
                **self._generation,
            )
        generated = output[0, prompt_length:]
        text = self._tokenizer.decode(generated, skip_special_tokens=True)
        return Completion(
            text, Usage(prompt_tokens=prompt_length, completion_tokens=len(generated))
        )
