"""What one SFT step computes, with torch, transformers and peft alone.

The trainer (``sft_train``) and the GPU benchmark (``bench.sft_gpu``, which runs on a bare CUDA
machine with no trl, datasets, pydantic or polars) share this module, so it imports nothing else:

- the LoRA presets: MedArk's values and q_proj/v_proj targets, and ours;
- the batch shapes: MedArk's padding of every example to a fixed length, and packing several
  examples into one row with no padding at all, with an attention (``ark_packed``) that keeps the
  packed examples apart;
- the loss over labelled positions only: the LM head projects just the rows whose next token
  carries loss, a chunk of rows at a time, and the gradient is computed in the same pass (a
  fused linear cross-entropy in plain torch), so the ``(tokens, vocabulary)`` logits that
  MedArk's full-vocabulary loss builds at every position never exist.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from peft import LoraConfig

IGNORE_INDEX = -100  # transformers' ignore index (render.IGNORE_INDEX; no pydantic import here)
PACKED_ATTENTION = "ark_packed"
# Bytes of fp32 logits one chunk of the labelled loss may hold: 256 MiB is 441 rows of Qwen2.5's
# 151,936-token vocabulary, enough rows per matmul to keep a GPU busy.
LOSS_CHUNK_BYTES = 256 * 2**20

# The modules each preset adapts. MedArk sets no targets of its own: it passes peft's default
# mapping for qwen2, which is q_proj and v_proj only. Ours is peft's "all-linear" (every
# attention and MLP projection, not the output head): at rank 8, q/v alone leave a small student
# little capacity to learn the tool-call format, and all-linear is the usual LoRA practice since
# QLoRA (not measured here).
LORA_TARGETS: dict[str, list[str] | str] = {"ark": "all-linear", "medark": ["q_proj", "v_proj"]}
MEDARK_LORA: dict[str, Any] = {"r": 8, "alpha": 16, "dropout": 0.1, "use_rslora": True}


def peft_lora_config(
    r: int, alpha: int, dropout: float, use_rslora: bool, target_modules: list[str] | str
) -> LoraConfig:
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        use_rslora=use_rslora,
        target_modules=target_modules,
        task_type="CAUSAL_LM",
    )


def grouped_order(lengths: Sequence[int], group_size: int, seed: int) -> list[int]:
    """Row indices sorted by length, cut into groups of ``group_size``, groups shuffled (seeded).

    With ``group_size`` 1 this is a seeded shuffle of single examples, and it is the same
    permutation whichever recipe asks for it, so batch-1 runs of two recipes see the same
    examples in the same order.
    """
    by_length = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    groups = [by_length[i : i + group_size] for i in range(0, len(by_length), group_size)]
    random.Random(seed).shuffle(groups)
    return [index for group in groups for index in group]


def pad_to_length(
    features: Sequence[Mapping[str, Any]], length: int, pad_id: int
) -> dict[str, torch.Tensor]:
    """MedArk's batches: every example right-padded to ``length`` tokens (its tokenizer pads to
    max_length), attention mask 0 and label -100 on the padding."""
    too_long = [len(f["input_ids"]) for f in features if len(f["input_ids"]) > length]
    if too_long:
        raise ValueError(
            f"examples of {too_long} tokens exceed the padded length {length}: over-length "
            "examples are quarantined by sft_records, never truncated"
        )
    rows = len(features)
    input_ids = torch.full((rows, length), pad_id, dtype=torch.long)
    labels = torch.full((rows, length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((rows, length), dtype=torch.long)
    for row, feature in enumerate(features):
        n = len(feature["input_ids"])
        input_ids[row, :n] = torch.tensor(feature["input_ids"])
        labels[row, :n] = torch.tensor(feature["labels"])
        attention_mask[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def pack(features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Examples concatenated into one row, no padding: position ids restart at 0 for each
    example (what ``ark_packed`` reads the boundaries from), and each example's first label is
    -100, so no position learns to predict the next example's first token."""
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for feature in features:
        n = len(feature["input_ids"])
        ids.extend(feature["input_ids"])
        labels.extend([IGNORE_INDEX, *feature["labels"][1:]])
        positions.extend(range(n))
    return {
        "input_ids": torch.tensor([ids]),
        "position_ids": torch.tensor([positions]),
        "labels": torch.tensor([labels]),
    }


def token_budget_batches(
    order: Sequence[int], lengths: Sequence[int], budget: int
) -> list[list[int]]:
    """Consecutive examples of ``order`` grouped while their tokens fit ``budget`` (an example
    longer than the budget gets a batch of its own)."""
    batches: list[list[int]] = []
    used = budget
    for index in order:
        if used + lengths[index] > budget:
            batches.append([])
            used = 0
        batches[-1].append(index)
        used += lengths[index]
    return batches


def packed_sdpa(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Causal attention within each example of a packed row: transformers' SDPA attention on
    each example's slice (the causal kernel, no mask), the outputs concatenated.

    Without flash-attn (no wheel under the GPU machine's 64 MiB carry limit) this is what torch
    and transformers offer for packed rows at exact cost: transformers' own SDPA path turns
    packed position ids into a dense block-diagonal mask and computes attention over the whole
    row, (sum of lengths)² instead of the sum of length², and torch's varlen_attn is CUDA-only,
    so no CPU test could run it.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if position_ids is None or query.shape[0] != 1:
        raise ValueError(
            f"{PACKED_ATTENTION} attention needs one packed row and its position_ids "
            "(sft_step.pack); load the model with attn_implementation='sdpa' for padded batches"
        )
    starts = torch.nonzero(position_ids.reshape(-1) == 0).flatten().tolist()
    bounds = [*starts, query.shape[2]]
    outputs = [
        sdpa_attention_forward(
            module, query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], None, **kwargs
        )[0]
        for a, b in itertools.pairwise(bounds)
    ]
    return torch.cat(outputs, dim=1), None


def register_packed_attention() -> str:
    """Registers ``packed_sdpa`` with transformers as ``ark_packed`` (for
    ``attn_implementation=``); transformers builds no mask for an attention it has no mask
    function for."""
    from transformers import AttentionInterface

    AttentionInterface.register(PACKED_ATTENTION, packed_sdpa)
    return PACKED_ATTENTION


class _LinearCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of ``head(hidden)`` against ``targets``, ``rows`` rows at a time;
    the gradients are computed in the forward pass from each chunk's softmax, so no chunk's
    logits outlive it and backward only scales them."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        head: torch.nn.Module,
        rows: int,
    ) -> torch.Tensor:
        wants_hidden, wants_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        wants_bias = bias is not None and ctx.needs_input_grad[2]
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if wants_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if wants_weight else None
        grad_bias = (
            torch.zeros_like(bias, dtype=torch.float32) if bias is not None and wants_bias else None
        )
        for start in range(0, hidden.shape[0], rows):
            chunk, target = hidden[start : start + rows], targets[start : start + rows]
            logits = head(chunk).float()  # through the module: its hooks see the rows projected
            picked = torch.arange(chunk.shape[0], device=chunk.device)
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits[picked, target]).sum()
            if grad_hidden is None and grad_weight is None and grad_bias is None:
                continue
            probs = logits.sub_(lse[:, None]).exp_()  # softmax, in the logits' memory
            probs[picked, target] -= 1.0  # d(loss)/d(logits)
            if grad_hidden is not None:
                grad_hidden[start : start + rows] = (probs.to(weight.dtype) @ weight).to(
                    hidden.dtype
                )
            if grad_weight is not None:
                grad_weight += probs.t() @ chunk.float()
            if grad_bias is not None:
                grad_bias += probs.sum(dim=0)
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        ctx.dtypes = (weight.dtype, None if bias is None else bias.dtype)
        return total

    @staticmethod
    def backward(ctx: Any, grad_total: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        weight_dtype, bias_dtype = ctx.dtypes
        return (
            None if grad_hidden is None else grad_hidden * grad_total.to(grad_hidden.dtype),
            None if grad_weight is None else (grad_weight * grad_total).to(weight_dtype),
            None if grad_bias is None else (grad_bias * grad_total).to(bias_dtype),
            None,
            None,
            None,
        )


def labelled_cross_entropy(
    hidden: torch.Tensor,
    head: torch.nn.Module,
    targets: torch.Tensor,
    num_items: int | torch.Tensor | None = None,
    chunk_bytes: int = LOSS_CHUNK_BYTES,
) -> torch.Tensor:
    """Mean negative log-likelihood of ``targets`` (-100: no loss) under ``head(hidden)``, with
    only the labelled rows projected through the vocabulary; divided by ``num_items`` when given
    (the labelled tokens of every micro-batch of the update, as transformers' Trainer counts
    them), else by the labelled rows here."""
    if not isinstance(head, torch.nn.Linear):
        raise ValueError(
            f"the labelled loss computes the LM head's gradients itself, so the head must be a "
            f"plain torch.nn.Linear (got {type(head).__name__}): do not adapt it with LoRA"
        )
    flat = hidden.reshape(-1, hidden.shape[-1])
    keep = targets.reshape(-1) != IGNORE_INDEX
    rows = max(1, chunk_bytes // (4 * head.out_features))
    total = _LinearCrossEntropy.apply(
        flat[keep], head.weight, head.bias, targets.reshape(-1)[keep], head, rows
    )
    denominator = keep.sum().clamp(min=1) if num_items is None else num_items
    return total / denominator


def next_token_targets(labels: torch.Tensor) -> torch.Tensor:
    """Each position's target: the next position's label (-100 at the end of each row)."""
    return torch.cat([labels[..., 1:], torch.full_like(labels[..., :1], IGNORE_INDEX)], dim=-1)


def causal_lm_loss(
    model: torch.nn.Module,
    inputs: Mapping[str, Any],
    num_items: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """The causal LM loss of ``inputs`` (with ``labels``, unshifted as transformers takes them)
    through ``model``'s decoder and ``labelled_cross_entropy``: what the model's own loss
    computes, without its logits at the unlabelled positions."""
    from peft import PeftModel

    causal: Any = model.get_base_model() if isinstance(model, PeftModel) else model
    config = causal.config.get_text_config()
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        raise ValueError(
            f"{config.model_type} scales or soft-caps its logits, which the labelled loss does "
            "not: use the model's own loss (recipe medark) for it"
        )
    rest = {name: value for name, value in inputs.items() if name != "labels"}
    hidden = causal.base_model(**rest, use_cache=False).last_hidden_state
    return labelled_cross_entropy(
        hidden, causal.get_output_embeddings(), next_token_targets(inputs["labels"]), num_items
    )
