"""Grammar-constrained decoding for ``transformers``: a JSON schema as a per-row token mask.

The engine is **llguidance** (the grammar engine vLLM and llama.cpp also use): a compiled
library without Python dependencies that computes the mask of allowed next tokens over
Qwen2.5's 152k-token vocabulary in about a millisecond per row (measured on this CPU), the rows
of a batch in parallel. Against the alternatives: xgrammar's Linux wheel requires triton (a GPU
stack in a CPU install); outlines and lm-format-enforcer build and apply their masks in Python,
slow on a 152k vocabulary.

``JsonGrammar`` holds what every constrained generate of one model shares: the tokenizer
converted for llguidance (several seconds for Qwen2.5's vocabulary, so done once) and a mask
executor. ``SchemaMask`` is the ``LogitsProcessor`` of one ``model.generate`` call: one
matcher per row, advanced with the token the row chose at the previous step; a row whose
grammar is complete can only end (its end-of-sequence token is forced).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import llguidance
import llguidance.hf
import torch
from transformers import LogitsProcessor

_BITS = 32  # llguidance packs the mask as int32 words, bit i of word w is token 32 * w + i


class GrammarError(ValueError):
    """A constraint llguidance cannot compile (an invalid or unsupported JSON schema)."""


class JsonGrammar:
    """llguidance's view of one tokenizer, for masks of ``vocab_size`` logits."""

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self.tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size)
        self.executor = llguidance.LLExecutor()

    @property
    def eos_token_id(self) -> int:
        return int(self.tokenizer.eos_token)

    def matcher(self, schema: dict[str, Any]) -> llguidance.LLMatcher:
        """A fresh matcher of ``schema``; ``GrammarError`` says why a schema cannot be used."""
        try:
            # The chat template serialises tool calls as ``json.dumps`` does (", " and ": ", no
            # other whitespace): constrained calls keep the layout the student was trained on,
            # and a model cannot spend its token budget on whitespace a grammar would allow.
            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                json.dumps(schema),
                overrides={
                    "whitespace_flexible": False,
                    "item_separator": ", ",
                    "key_separator": ": ",
                },
            )
        except ValueError as err:
            raise GrammarError(f"constraint is not a JSON schema object: {err}") from err
        matcher = llguidance.LLMatcher(self.tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise GrammarError(f"llguidance rejected the constraint: {matcher.get_error()}")
        return matcher


class SchemaMask(LogitsProcessor):
    """Masks each row's logits to what its matcher allows next (one ``generate`` call)."""

    def __init__(self, grammar: JsonGrammar, matchers: Sequence[llguidance.LLMatcher]) -> None:
        self._grammar = grammar
        self._matchers = list(matchers)
        self._eos = grammar.eos_token_id
        words = (grammar.vocab_size + _BITS - 1) // _BITS
        self._mask = torch.full((len(matchers), words), -1, dtype=torch.int32)
        self._shifts: torch.Tensor | None = None
        self._prompt_width: int | None = None
        self._ended = [False] * len(matchers)  # the row produced its end-of-sequence token
        # Why a row's output broke the grammar (a token the mask did not allow), per row.
        self.errors: list[str | None] = [None] * len(matchers)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._prompt_width is None:
            self._prompt_width = input_ids.shape[1]
        else:
            self._consume(input_ids[:, -1].tolist())
        masked: list[int] = []
        forced: list[int] = []
        for row, matcher in enumerate(self._matchers):
            if self._ended[row]:
                continue  # generate pads the row from here; its scores are not used
            (forced if matcher.is_stopped() else masked).append(row)
        if masked:
            self._fill(masked)
            allowed = self._allowed(masked, scores)
            scores[masked] = scores[masked].masked_fill(~allowed, float("-inf"))
        if forced:
            scores[forced] = float("-inf")
            scores[forced, self._eos] = 0.0
        return scores

    def _consume(self, tokens: list[int]) -> None:
        for row, token in enumerate(tokens):
            if self._ended[row]:
                continue
            matcher = self._matchers[row]
            if token == self._eos:
                self._ended[row] = True
            elif not matcher.consume_token(token) and self.errors[row] is None:
                self.errors[row] = matcher.get_error() or f"token {token} broke the grammar"

    def _fill(self, rows: list[int]) -> None:
        # The pointer form of llguidance.torch.fill_next_token_bitmask_par: importing
        # llguidance.torch pulls in torch.compile (about 10 s on CPU) for a kernel not used here.
        assert self._mask.is_contiguous()
        row_bytes = self._mask.shape[1] * self._mask.element_size()
        self._grammar.executor.unsafe_compute_mask_ptr(
            [(self._matchers[row], row) for row in rows],
            self._mask.data_ptr(),
            row_bytes,
            self._mask.shape[0],
        )

    def _allowed(self, rows: list[int], scores: torch.Tensor) -> torch.Tensor:
        """The packed masks of ``rows`` as booleans over the ``scores`` vocabulary."""
        if self._shifts is None:
            self._shifts = torch.arange(_BITS, dtype=torch.int32, device=scores.device)
        packed = self._mask[rows].to(scores.device)
        bits = (packed.unsqueeze(-1) >> self._shifts) & 1
        return bits.flatten(1)[:, : scores.shape[1]].bool()
