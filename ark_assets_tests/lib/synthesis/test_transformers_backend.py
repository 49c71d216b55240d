"""The transformers backend with a tiny random-weight Qwen2 model built in the test (offline).

A random model writes garbage, which proves the failure path (generate → no JSON → repair →
retry → recorded failure); constrained decoding (``prefix_allowed_tokens_fn``) makes the same
model write a valid answer, which proves the success path (generate → extract → validate).
"""

import json
import string
from pathlib import Path
from typing import Any

import pytest
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from ark_assets.lib.synthesis import prompts
from ark_assets.lib.synthesis.backends.transformers_backend import TransformersBackend
from ark_assets.lib.synthesis.loop import ArkLoop
from ark_assets.lib.synthesis.models import AskCheck
from ark_assets.lib.synthesis.teacher import RetryPolicy, Teacher, TeacherFailure, TeacherRequest
from ark_assets.testing.retriever import MemoryRetriever
from ark_assets_tests.lib.synthesis.conftest import sample_prefixes

_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "[UNK]"]
_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_ANSWER = json.dumps({"reasoning": "asks", "is_asking": True})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A character-level tokenizer and a 2-layer, 64-wide random Qwen2, saved like a real one."""
    vocab = {token: i for i, token in enumerate([*_SPECIAL, *string.printable])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens(_SPECIAL)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="[UNK]"
    )
    tokenizer.chat_template = _CHATML
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(vocab),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        eos_token_id=vocab["<|im_end|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    path = tmp_path_factory.mktemp("tiny-qwen2")
    Qwen2ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _classify() -> TeacherRequest[AskCheck]:
    reply = "How long have you had the fever?"
    messages = prompts.messages("classify", "en", AskCheck, reply=reply)
    return TeacherRequest("classify", "en", AskCheck, messages, {"reply": reply})


def test_random_weights_fail_after_the_attempts_and_the_loop_records_it(
    tiny: Path, kb: MemoryRetriever
) -> None:
    backend = TransformersBackend.from_path(str(tiny), max_new_tokens=16)
    teacher = Teacher(backend, retry=RetryPolicy(max_attempts=2), sleep=lambda s: None)
    with pytest.raises(TeacherFailure) as failure:
        teacher.ask(_classify())
    assert failure.value.error_type == "InvalidOutput" and failure.value.attempts == 2
    stats = teacher.stats.as_dict()["classify"]
    assert (stats["calls"], stats["retried"], stats["failed"]) == (2, 1, 1)
    assert stats["prompt_tokens"] > 500 and 0 < stats["completion_tokens"] <= 32
    assert backend.identity.backend == "transformers" and teacher.concurrency == 1

    outcome = ArkLoop(teacher, kb, "kb").run(sample_prefixes("en", 1)[:1])
    (recorded,) = outcome.failures
    assert not outcome.paths and recorded.stage == "request" and recorded.attempts == 2


def test_constrained_decoding_yields_a_validated_answer(tiny: Path) -> None:
    loaded = TransformersBackend.from_path(str(tiny))
    tokenizer: Any = loaded._tokenizer
    request = _classify()
    prompt = tokenizer.apply_chat_template(
        request.messages, add_generation_prompt=True, return_dict=True
    )
    start = len(prompt["input_ids"])
    target = [*tokenizer(_ANSWER)["input_ids"], tokenizer.eos_token_id]

    def allowed(batch_id: int, generated: torch.Tensor) -> list[int]:
        return [target[min(len(generated) - start, len(target) - 1)]]

    backend = TransformersBackend(
        loaded._model,
        tokenizer,
        name="tiny-qwen2-constrained",
        max_new_tokens=len(target) + 4,
        generation={"prefix_allowed_tokens_fn": allowed},
    )
    answer, cached = Teacher(backend).ask(request)
    assert answer == AskCheck(reasoning="asks", is_asking=True) and not cached
