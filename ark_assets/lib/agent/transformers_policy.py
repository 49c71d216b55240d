"""The student in process: a Hugging Face checkpoint, optionally with a LoRA adapter (peft).

``TransformersPolicy.generate`` serves a batch of rendered prompts with one batched
``model.generate`` per group of requests that share their decoding settings and whether they
are constrained, each group sorted by prompt length and cut where rows × positions would pass
``max_batch_tokens`` (a short prompt batched with a long one costs the long one's traffic):
left padding with an attention mask (positions follow the mask, so a padded row decodes as it
would alone), the KV cache, greedy decoding at temperature 0, otherwise sampling seeded by
``Decoding.seed``. Free text stops at ``STOP_STRINGS``; a constrained request is decoded under
its JSON schema with llguidance (``constraint.py`` says why that engine) and ends where the
JSON ends.

Per request it reports:

- ``text``: the continuation, cut before the first stop string (the JSON only, when
  constrained);
- ``token_logprobs``: the log-probability of every generated token under the distribution it
  was drawn from (after temperature, top-p and the grammar mask), the terminating token
  included, as vLLM reports them;
- ``completion_tokens``: the number of those tokens; ``prompt_tokens``: the prompt's tokens,
  padding excluded;
- ``finish_reason`` ``length`` when ``max_new_tokens`` ran out first, ``error`` (with the
  reason) for a constraint llguidance cannot compile or a grammar violation.

Sampling is reproducible for the same batch: a row's draw depends on the rows sampled with it.

**Prefix KV cache** (``prefix_cache``, on by default): every prompt of the loop starts with the
same system message and tool schemas (about 750 tokens of a 1,000-token prompt with SmolLM2's
tokenizer, one per language), and each step's prompt is the previous step's plus the call and
the tool turn (a retry: the same prompt); MedArk's loop prefills all of it again at every step
of every dialogue. The policy keeps keys and values of prompt prefixes, each computed once — a
longer one from the longest kept one it extends — least recently used evicted past
``prefix_cache_tokens``: the prefix a row shares with another row or a prompt of the previous
batch (the system message), then the row's own prompt but its last token, computed alone (batch
1: no padding is ever prefilled, and the next step or a retry of the row starts from it). A
batch's generate starts from them: a row is laid out as ``prefix · padding · last token`` (the
padding masked; positions follow the mask, so each row sees the positions it would alone), so
the batched forward passes only decode, into a static cache (preallocated for the prompt and
new tokens: no per-step copy of the keys and values). Greedy outputs match the uncached ones
(tested).

**Merged adapter** (``merge_adapter``, on by default): the LoRA weights are added into the base
weights once at load (peft's ``merge_and_unload``), so a forward pass costs the base model's;
MedArk's ``infer.py`` runs the adapter unmerged (``load_adapter``), one extra pair of matrix
products per adapted layer and token (25–45% of a decode step on 2 CPU cores).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    GenerationConfig,
    StaticCache,
    StoppingCriteriaList,
    StopStringCriteria,
)

from ark_assets.lib.agent.constraint import GrammarError, JsonGrammar, SchemaMask
from ark_assets.lib.agent.policy import (
    STOP_STRINGS,
    Decoding,
    Generation,
    GenerationRequest,
    PolicyIdentity,
)

PAD_FALLBACK = "<|endoftext|>"  # Qwen2.5's pad token, for tokenizers that define none
# A shared prefix shorter than this (or only this much longer than one kept) is not worth
# caching; the kept prefixes hold at most PREFIX_CACHE_TOKENS tokens in all by default
# (SmolLM2-135M in fp32: 46 KB of keys and values per token, 3 GB; Qwen2.5-1.5B in bf16:
# 28 KB). Enough for the own prompts of 32–48 rows, so a step's sub-batches keep each other's.
MIN_SHARED_PREFIX = 32
PREFIX_CACHE_TOKENS = 65_536
# Rows × positions (prompt + new tokens) per batched generate: one ``generate`` call's requests
# are split by prompt length to stay within it (``_sub_batches``). Decoding into a static cache,
# a CPU step's cost per row still falls up to ~50 rows of 1,300 positions (SmolLM2-135M,
# 2 cores: 164 ms a row-token alone, 32 at 13 rows, 23 at 26, 20 at 52); on CUDA a step's cost
# grows little with the batch, so its budget is larger.
CPU_BATCH_TOKENS = 65_536
CUDA_BATCH_TOKENS = 262_144


class TransformersPolicy:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        identity: PolicyIdentity,
        *,
        prefix_cache: bool = True,
        prefix_cache_tokens: int = PREFIX_CACHE_TOKENS,
        max_batch_tokens: int | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.identity = identity
        self.prefix_cache = prefix_cache
        self.prefix_cache_tokens = prefix_cache_tokens
        self.max_batch_tokens = max_batch_tokens or (
            CUDA_BATCH_TOKENS if model.device.type == "cuda" else CPU_BATCH_TOKENS
        )
        # token prefix -> its keys and values per layer, least recently used first
        self._prefixes: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = (
            OrderedDict()
        )
        self._recent: list[list[int]] = []  # the previous batch's prompts
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = (
                PAD_FALLBACK if PAD_FALLBACK in tokenizer.get_vocab() else tokenizer.eos_token
            )
        self._eos_ids = _eos_ids(model.generation_config, tokenizer)
        # Decoding is exactly what ``Decoding`` says: generate fills every option left unset
        # from the checkpoint's generation config (Qwen2.5-Instruct ships temperature 0.7,
        # top_p 0.8, top_k 20, repetition_penalty 1.05), so only the special tokens are kept.
        model.generation_config = GenerationConfig(
            bos_token_id=model.generation_config.bos_token_id,
            eos_token_id=self._eos_ids,
            pad_token_id=tokenizer.pad_token_id,
        )
        self._grammar: JsonGrammar | None = None
        self._stop_strings: StopStringCriteria | None = None

    @classmethod
    def load(
        cls,
        model_path: str | Path,
        adapter_path: str | Path | None = None,
        *,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        prefix_cache: bool = True,
        merge_adapter: bool = True,
        max_batch_tokens: int | None = None,
    ) -> TransformersPolicy:
        """The base checkpoint at ``model_path`` (plus the LoRA adapter at ``adapter_path``,
        merged into the weights unless ``merge_adapter`` is false), for inference on ``device``
        (CUDA when available), in ``dtype`` (float32 on CPU, bfloat16 on CUDA). Local files
        only: nothing is downloaded."""
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        # Any: transformers' stubs type .to() through a decorator mypy cannot follow.
        model: Any = AutoModelForCausalLM.from_pretrained(
            model_path, dtype=dtype, local_files_only=True
        )
        model.to(device)
        if adapter_path is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter_path))
            if merge_adapter:
                model = model.merge_and_unload()
        model.eval()
        identity = PolicyIdentity(
            "transformers", str(model_path), str(adapter_path) if adapter_path else ""
        )
        return cls(
            model,
            tokenizer,
            identity,
            prefix_cache=prefix_cache,
            max_batch_tokens=max_batch_tokens,
        )

    @property
    def grammar(self) -> JsonGrammar:
        """llguidance's tokenizer, converted on the first constrained request (seconds)."""
        if self._grammar is None:
            self._grammar = JsonGrammar(self.tokenizer, self.model.config.vocab_size)
        return self._grammar

    @property
    def stop_strings(self) -> StopStringCriteria:
        """STOP_STRINGS matched across token boundaries, built once (seconds for a 152k
        vocabulary). ``generate(stop_strings=…)`` would rebuild its cache key from the whole
        vocabulary on every call, about a second each."""
        if self._stop_strings is None:
            self._stop_strings = StopStringCriteria(self.tokenizer, list(STOP_STRINGS))
        return self._stop_strings

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        groups: dict[tuple[Decoding, bool], list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault((request.decoding, request.constraint is not None), []).append(index)
        encoded: list[list[int]] = self.tokenizer(
            [r.prompt for r in requests],
            add_special_tokens=False,  # the chat template already wrote every special token
        )["input_ids"]
        out: list[Generation | None] = [None] * len(requests)
        for (decoding, constrained), indices in groups.items():
            for part in self._sub_batches(indices, encoded, decoding.max_new_tokens):
                batch, ids = [requests[i] for i in part], [encoded[i] for i in part]
                results = (
                    self._constrained(batch, decoding, ids)
                    if constrained
                    else self._run(batch, decoding, None, ids)
                )
                for index, result in zip(part, results, strict=True):
                    out[index] = result
        return [g for g in out if g is not None]

    def _sub_batches(
        self, indices: list[int], encoded: list[list[int]], new_tokens: int
    ) -> list[list[int]]:
        """``indices`` by prompt length, cut where a batch would exceed ``max_batch_tokens``
        (rows × the longest row's prompt and new tokens: the keys and values every decode step
        reads). A short prompt batched with a long one is padded to its length and pays the
        long one's reads (SmolLM2-135M, 2 cores, static cache: 16 rows of 2,800 positions
        0.59 s a step, 37 ms a row-token; 13 rows of 1,300 0.32 s, 24 ms)."""
        batches: list[list[int]] = []
        for index in sorted(indices, key=lambda i: len(encoded[i])):
            width = len(encoded[index]) + new_tokens
            if batches and (len(batches[-1]) + 1) * width <= self.max_batch_tokens:
                batches[-1].append(index)
            else:
                batches.append([index])
        return batches

    def _constrained(
        self, requests: list[GenerationRequest], decoding: Decoding, encoded: list[list[int]]
    ) -> list[Generation]:
        """Requests whose schema compiles run under one mask; the others come back as errors."""
        out: list[Generation | None] = [None] * len(requests)
        served, matchers = [], []
        for index, request in enumerate(requests):
            assert request.constraint is not None
            try:
                matchers.append(self.grammar.matcher(request.constraint))
            except GrammarError as err:
                out[index] = Generation("", finish_reason="error", error=str(err))
                continue
            served.append(index)
        if served:
            mask = SchemaMask(self.grammar, matchers)
            results = self._run(
                [requests[i] for i in served], decoding, mask, [encoded[i] for i in served]
            )
            for row, (index, result) in enumerate(zip(served, results, strict=True)):
                error = mask.errors[row]
                out[index] = (
                    result
                    if error is None
                    else Generation(
                        result.text,
                        result.token_logprobs,
                        result.prompt_tokens,
                        result.completion_tokens,
                        finish_reason="error",
                        error=f"grammar: {error}",
                    )
                )
        return [g for g in out if g is not None]

    def _run(
        self,
        requests: list[GenerationRequest],
        decoding: Decoding,
        mask: SchemaMask | None,
        encoded: list[list[int]],
    ) -> list[Generation]:
        """One batched generate of ``encoded`` (the requests' prompt tokens); free text stops
        at STOP_STRINGS, a masked batch at its EOS."""
        inputs, cache = self._inputs(encoded, decoding.max_new_tokens)
        options: dict[str, Any] = dict(
            max_new_tokens=decoding.max_new_tokens,
            do_sample=decoding.temperature > 0,
            use_cache=True,
            output_scores=True,
            return_dict_in_generate=True,
        )
        if decoding.temperature > 0:
            # top_k 0: generate's own default is 50, and Decoding has no top-k.
            options.update(temperature=decoding.temperature, top_p=decoding.top_p, top_k=0)
        if mask is None:
            options.update(stopping_criteria=StoppingCriteriaList([self.stop_strings]))
        else:
            options.update(logits_processor=[mask])
        if cache is not None:
            options.update(cache=cache)
        devices = [self.model.device] if self.model.device.type == "cuda" else []
        with torch.inference_mode(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(decoding.seed)
            output = self.model.generate(**inputs, **options)
        width = inputs["input_ids"].shape[1]
        generated = output.sequences[:, width:]
        logprobs = _chosen_logprobs(output.scores, generated)
        prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
        return [
            self._generation(
                generated[row].tolist(), logprobs[row], int(prompt_lengths[row]), mask is not None
            )
            for row in range(len(requests))
        ]

    def forget_prefixes(self) -> None:
        """Drop the kept prefix caches (a benchmark measures their computation too)."""
        self._prefixes.clear()
        self._recent = []

    def _inputs(
        self, encoded: list[list[int]], new_tokens: int
    ) -> tuple[dict[str, torch.Tensor], Any]:
        """``input_ids`` and ``attention_mask`` for ``encoded`` prompts, and the KV cache of
        their cached prefixes (None without one). A row reads ``prefix · padding · rest``: its
        cached prefix (none for some rows), padding to the longest cached prefix, left padding
        of the rest to the longest rest; the cache holds each row's prefix keys and values,
        zeros under the padding (masked)."""
        prefixes = self._prefixes_of(encoded) if self.prefix_cache else [()] * len(encoded)
        cached = max(len(prefix) for prefix in prefixes)
        rest = max(len(ids) - len(prefix) for ids, prefix in zip(encoded, prefixes, strict=True))
        pad = int(self.tokenizer.pad_token_id)
        rows, masks = [], []
        for ids, prefix in zip(encoded, prefixes, strict=True):
            gap, own = cached - len(prefix), len(ids) - len(prefix)
            rows.append([*prefix, *[pad] * (gap + rest - own), *ids[len(prefix) :]])
            masks.append([1] * len(prefix) + [0] * (gap + rest - own) + [1] * own)
        device = self.model.device
        inputs = {
            "input_ids": torch.tensor(rows, dtype=torch.long, device=device),
            "attention_mask": torch.tensor(masks, dtype=torch.long, device=device),
        }
        width = cached + rest
        return inputs, (self._batch_cache(prefixes, cached, width + new_tokens) if cached else None)

    def _prefixes_of(self, encoded: list[list[int]]) -> list[tuple[int, ...]]:
        """Each row's cached prefix: its prompt but the last token, computed (batch 1) from the
        longest kept prefix of it — after keeping, when ``MIN_SHARED_PREFIX`` tokens longer
        than that, the longest prefix it shares with another row or a prompt of the previous
        batch (the system message and tool schemas of its language), so that is computed once
        for all rows."""
        found: list[tuple[int, ...]] = []
        in_use: set[tuple[int, ...]] = set()  # kept through this batch
        for index, ids in enumerate(encoded):
            kept = self._longest_kept(ids)
            others = [*encoded[:index], *encoded[index + 1 :], *self._recent]
            length = min(max((_common_prefix(ids, o) for o in others), default=0), len(ids) - 1)
            if length >= len(kept) + MIN_SHARED_PREFIX:
                kept = self._keep(tuple(ids[:length]), kept)
                in_use.add(kept)
            own = tuple(ids[:-1])
            if len(own) > len(kept):
                kept = self._keep(own, kept)
            if kept:
                self._prefixes.move_to_end(kept)
                in_use.add(kept)
            found.append(kept)
        while sum(map(len, self._prefixes)) > self.prefix_cache_tokens:
            oldest = next((p for p in self._prefixes if p not in in_use), None)
            if oldest is None:
                break
            del self._prefixes[oldest]
        self._recent = [list(ids) for ids in encoded]
        return found

    def _longest_kept(self, ids: list[int]) -> tuple[int, ...]:
        return max(
            (p for p in self._prefixes if len(p) < len(ids) and tuple(ids[: len(p)]) == p),
            key=len,
            default=(),
        )

    def _keep(self, prefix: tuple[int, ...], kept: tuple[int, ...]) -> tuple[int, ...]:
        self._prefixes[prefix] = self._prefill(prefix, kept)
        return prefix

    def _prefill(
        self, prefix: tuple[int, ...], kept: tuple[int, ...]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The keys and values of ``prefix`` per layer (batch 1), from ``kept``'s (a prefix of
        it, possibly empty) plus one forward over the tokens after it."""
        base = DynamicCache(self._prefixes[kept]) if kept else DynamicCache()
        with torch.inference_mode():
            tensor = torch.tensor([prefix[len(kept) :]], dtype=torch.long, device=self.model.device)
            output = self.model(input_ids=tensor, cache=base, use_cache=True)
        cache = getattr(output, "cache", None) or output.past_key_values
        return [(layer[0], layer[1]) for layer in cache]

    def _batch_cache(
        self, prefixes: list[tuple[int, ...]], length: int, capacity: int
    ) -> StaticCache:
        """One StaticCache of ``capacity`` positions for the batch, holding each row's prefix
        keys and values zero-padded to ``length`` (copies: the kept prefixes are never
        written). Static, not dynamic: a DynamicCache concatenates every layer's keys and
        values anew at each decode step, and at a few thousand positions per row that copy
        costs more than the model (16 rows of 2,800 positions, 2 cores: 2.1 s a step
        against 0.6 s; the same tokens out)."""
        blank: list[tuple[torch.Tensor, torch.Tensor]] = next(
            self._prefixes[p] for p in prefixes if p
        )
        cache = StaticCache(config=self.model.config, max_cache_len=capacity)
        for layer, (key, _) in enumerate(blank):
            keys, values = [], []
            for prefix in prefixes:
                k, v = self._prefixes[prefix][layer] if prefix else (key[:, :, :0], key[:, :, :0])
                gap = length - k.shape[2]
                keys.append(torch.nn.functional.pad(k, (0, 0, 0, gap)))
                values.append(torch.nn.functional.pad(v, (0, 0, 0, gap)))
            cache.update(torch.cat(keys), torch.cat(values), layer)
        return cache

    def _generation(
        self, tokens: list[int], logprobs: list[float], prompt_tokens: int, constrained: bool
    ) -> Generation:
        """A row's result: up to its end-of-sequence token, or (free text) its first stop
        string; a constrained row ends only at EOS (a JSON string may hold a stop string)."""
        end = next((i for i, t in enumerate(tokens) if t in self._eos_ids), None)
        kept = tokens if end is None else tokens[: end + 1]
        text = self._decode(kept)
        stop = None if constrained else _first_stop(text)
        if stop is not None:
            count, text, finish = self._tokens_to_stop(kept), text[:stop], "stop"
        elif end is not None:
            count, text, finish = end + 1, self._decode(tokens[:end]), "stop"
        else:
            count, finish = len(tokens), "length"
        return Generation(
            text=text,
            token_logprobs=logprobs[:count],
            prompt_tokens=prompt_tokens,
            completion_tokens=count,
            finish_reason=finish,
        )

    def _decode(self, tokens: list[int]) -> str:
        return str(
            self.tokenizer.decode(
                tokens, skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
        )

    def _tokens_to_stop(self, tokens: list[int]) -> int:
        """The fewest leading tokens whose text holds a stop string (a stop string may span
        several tokens, and once present it stays present: binary search)."""
        low, high = 1, len(tokens)
        while low < high:
            middle = (low + high) // 2
            if _first_stop(self._decode(tokens[:middle])) is None:
                low = middle + 1
            else:
                high = middle
        return low


def _common_prefix(first: Sequence[int], second: Sequence[int]) -> int:
    """Length of the longest prefix ``first`` and ``second`` share."""
    for index, (a, b) in enumerate(zip(first, second, strict=False)):
        if a != b:
            return index
    return min(len(first), len(second))


def _eos_ids(config: GenerationConfig, tokenizer: Any) -> list[int]:
    configured = config.eos_token_id
    ids = configured if isinstance(configured, list) else [configured]
    return sorted({int(i) for i in ids if i is not None} | {int(tokenizer.eos_token_id)})


def _first_stop(text: str) -> int | None:
    found = [i for i in (text.find(s) for s in STOP_STRINGS) if i >= 0]
    return min(found) if found else None


def _chosen_logprobs(scores: Sequence[torch.Tensor], chosen: torch.Tensor) -> list[list[float]]:
    """log_softmax of each step's processed scores at the chosen token, per row. One step at a
    time: ``compute_transition_scores`` stacks all steps (batch × steps × 152k floats)."""
    steps = [
        torch.log_softmax(step.float(), dim=-1).gather(1, chosen[:, t : t + 1]).squeeze(1)
        for t, step in enumerate(scores)
    ]
    if not steps:
        return [[] for _ in range(chosen.shape[0])]
    return torch.stack(steps, dim=1).tolist()
