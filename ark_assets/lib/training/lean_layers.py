"""Leaner saved activations for LoRA training: the same maths, less memory kept for backward.

Without recompute, what the forward pass keeps for the backward pass is most of a CPU step's
peak memory. Two pieces keep more than their gradients need (measured on SmolLM2 at 2,048
tokens with peft 0.21 and transformers' Llama MLP, ``docs/benchmarks.md``):

- **LoRA's dropout**: on CPU torch draws dropout as a float noise tensor the size of the input
  and keeps it, and ``lora_A`` keeps the dropped input as well: two float copies of every adapted
  module's input (seven modules a layer with LoRA on every projection). ``LoraDelta`` keeps the
  input itself (one tensor for the modules that share it: q/k/v, gate/up) and the dropped
  positions as a bool mask, and rebuilds the dropped input in the backward pass (one cheap
  pass). The mask is drawn from 31 random bits per element, compared against ``round(p·2³¹)``:
  a drop probability exact to 2⁻³¹ (torch's float ``bernoulli_`` is exact to 2⁻²⁴) at half the
  cost of ``bernoulli_`` on this machine, from torch's generator, so seeded runs repeat.
- **the SwiGLU MLP**: autograd keeps ``gate``, ``silu(gate)`` and ``up``; ``SwiGLU`` keeps
  ``gate`` and ``up`` and recomputes the activation in the backward pass. With LoRA on
  ``down_proj`` the adapter would keep ``silu(gate) · up`` too, the MLP's widest tensor;
  ``SwiGLULoraDown`` computes the MLP and the adapted ``down_proj`` in one function that keeps
  ``gate``, ``up`` and the mask and recomputes the product backward.

``make_lean(model)`` swaps these into a peft model in place (the forward of each LoRA ``Linear``
and of each SwiGLU MLP); anything it does not recognise (DoRA and other LoRA variants, merged or
disabled adapters, eval mode, other activations) keeps its own forward. torch only, so the GPU
benchmark can carry it to a bare CUDA machine.
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F

MASK_BITS = 31  # int64 random words hold 63 random bits: two 31-bit draws per word


def dropout_mask(like: torch.Tensor, p: float) -> torch.Tensor:
    """A bool tensor shaped like ``like``: True where dropout drops, each with probability ``p``
    (to 2⁻³¹), independently, from torch's default generator on ``like``'s device."""
    count = like.numel()
    words = torch.empty((count + 1) // 2, dtype=torch.int64, device=like.device).random_()
    draws = words.view(torch.int32)[:count].view(like.shape)
    return draws.bitwise_and_(2**MASK_BITS - 1) < round(p * 2**MASK_BITS)


def _lora_forward(
    ctx: Any,
    base: torch.Tensor,
    x: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    p: float,
    scaling: float,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """``base + lora_B(lora_A(dropout(x))) · scaling``, its dropout mask and its rank-r product.
    Dropout's 1/(1-p) and the scaling go on the rank-r side and the sum with ``base`` is the
    matmul's own accumulation: no pass over a full-width tensor is spent on either."""
    drop = dropout_mask(x, p) if p > 0 else None
    dropped = x if drop is None else torch.where(drop, 0.0, x)
    low_rank = dropped.to(a.dtype) @ a.t()
    ctx.scale = scaling / (1.0 - p)
    out = torch.addmm(_rows(base.to(a.dtype)), _rows(low_rank), b.t(), alpha=ctx.scale)
    return out.view(base.shape).to(base.dtype), drop, low_rank


def _lora_backward(
    ctx: Any,
    grad: torch.Tensor,
    x: torch.Tensor,
    drop: torch.Tensor | None,
    a: torch.Tensor,
    b: torch.Tensor,
    low_rank: torch.Tensor,
    need_x: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The gradients of ``_lora_forward``'s adapter: for ``a``, ``b`` and (if ``need_x``) the
    adapter's part of ``x``'s, dropped positions zero. Under autocast the forward's products
    ran in its dtype; the backward, which autocast does not reach, runs in the incoming
    gradient's (autograd casts each result back to its input's dtype)."""
    a, b, x, low_rank = (t.to(grad.dtype) for t in (a, b, x, low_rank))
    grad_b = (_rows(grad).t() @ _rows(low_rank)).mul_(ctx.scale)
    grad_low_rank = grad @ (b * ctx.scale)
    dropped = x if drop is None else torch.where(drop, 0.0, x)
    grad_a = _rows(grad_low_rank).t() @ _rows(dropped)
    if not need_x:
        return grad_a, grad_b, None
    grad_x = grad_low_rank @ a
    return grad_a, grad_b, grad_x if drop is None else torch.where(drop, 0.0, grad_x)


class LoraDelta(torch.autograd.Function):
    """``base + lora_B(lora_A(dropout(x))) · scaling`` as peft computes it, keeping ``x``, a
    bool mask and the rank-r product for the backward pass."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        base: torch.Tensor,
        x: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor,
        p: float,
        scaling: float,
    ) -> torch.Tensor:
        out, drop, low_rank = _lora_forward(ctx, base, x, a, b, p, scaling)
        ctx.save_for_backward(x, drop, a, b, low_rank)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, drop, a, b, low_rank = ctx.saved_tensors
        need_x = ctx.needs_input_grad[1]
        grad_a, grad_b, grad_x = _lora_backward(ctx, grad, x, drop, a, b, low_rank, need_x)
        return grad, grad_x, grad_a, grad_b, None, None


class SwiGLU(torch.autograd.Function):
    """``silu(gate) · up``, keeping only ``gate`` and ``up`` for the backward pass."""

    @staticmethod
    def forward(ctx: Any, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(gate, up)
        return F.silu(gate) * up

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        gate, up = ctx.saved_tensors
        grad_up = grad * F.silu(gate)
        grad_gate = torch.ops.aten.silu_backward(grad * up, gate)
        return grad_gate, grad_up


class SwiGLULoraDown(torch.autograd.Function):
    """``down(silu(gate) · up)`` where ``down`` is a frozen linear layer with a LoRA adapter:
    keeps ``gate``, ``up``, the mask and the rank-r product, not the MLP's widest activation
    (which ``SwiGLU`` and then the adapter's ``x`` would keep), and recomputes it backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        gate: torch.Tensor,
        up: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        a: torch.Tensor,
        b: torch.Tensor,
        p: float,
        scaling: float,
    ) -> torch.Tensor:
        hidden = F.silu(gate) * up
        out, drop, low_rank = _lora_forward(
            ctx, F.linear(hidden, weight, bias), hidden, a, b, p, scaling
        )
        ctx.save_for_backward(gate, up, drop, weight, a, b, low_rank)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        gate, up, drop, weight, a, b, low_rank = ctx.saved_tensors
        gate, up, weight = gate.to(grad.dtype), up.to(grad.dtype), weight.to(grad.dtype)
        activated = F.silu(gate)
        hidden = activated * up
        grad_a, grad_b, lora_grad = _lora_backward(ctx, grad, hidden, drop, a, b, low_rank)
        assert lora_grad is not None  # need_x defaults to True
        grad_hidden = torch.addmm(_rows(lora_grad), _rows(grad), weight).view(hidden.shape)
        grad_up = grad_hidden * activated
        grad_gate = torch.ops.aten.silu_backward(grad_hidden * up, gate)
        return grad_gate, grad_up, None, None, grad_a, grad_b, None, None


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, t.shape[-1])


def _lean_adapters(layer: Any, *args: Any, **kwargs: Any) -> list[str] | None:
    """The active adapters of a peft LoRA ``Linear`` if the lean path computes them as peft
    would, else None (peft's own forward then runs)."""
    adapters = [name for name in layer.active_adapters if name in layer.lora_A]
    plain = (
        not hasattr(layer, "_ark_plain_forward")
        or not layer.training
        or layer.disable_adapters
        or layer.merged
        or args
        or kwargs
        or any(name in layer.lora_variant for name in adapters)
        or any(not isinstance(layer.lora_dropout[n], torch.nn.Dropout | torch.nn.Identity)
               for n in adapters)
    )  # fmt: skip
    return None if plain else adapters


def _dropout_p(layer: Any, name: str) -> float:
    return float(getattr(layer.lora_dropout[name], "p", 0.0))


def _lean_lora_forward(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    adapters = _lean_adapters(self, *args, **kwargs)
    if adapters is None:
        return self._ark_plain_forward(x, *args, **kwargs)
    result = self.base_layer(x)
    result_dtype = result.dtype
    for name in adapters:
        a, b = self.lora_A[name].weight, self.lora_B[name].weight
        base = result.to(a.dtype)
        result = LoraDelta.apply(
            base, x.to(a.dtype), a, b, _dropout_p(self, name), self.scaling[name]
        )
    return result.to(result_dtype)


def _lean_mlp_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    gate, up, down = self.gate_proj(x), self.up_proj(x), self.down_proj
    adapters = _lean_adapters(down) if hasattr(down, "lora_A") else None
    frozen = isinstance(getattr(down, "base_layer", None), torch.nn.Linear) and not any(
        t.requires_grad for t in down.base_layer.parameters()
    )
    if adapters is None or len(adapters) != 1 or not frozen:
        return down(SwiGLU.apply(gate, up))
    (name,) = adapters
    return SwiGLULoraDown.apply(
        gate, up, down.base_layer.weight, down.base_layer.bias, down.lora_A[name].weight,
        down.lora_B[name].weight, _dropout_p(down, name), down.scaling[name],
    )  # fmt: skip


def _is_swiglu_mlp(module: torch.nn.Module) -> bool:
    parts = ("gate_proj", "up_proj", "down_proj", "act_fn")
    act = getattr(module, "act_fn", None)
    return all(hasattr(module, part) for part in parts) and (
        isinstance(act, torch.nn.SiLU) or type(act).__name__ == "SiLUActivation"
    )


def make_lean(model: torch.nn.Module) -> dict[str, int]:
    """Swap the lean forwards into ``model`` (a peft model) in place; how many modules of each
    kind were swapped (a model with neither is left as it was)."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    swapped = {"lora_linear": 0, "swiglu_mlp": 0}
    for module in model.modules():
        if isinstance(module, LoraLinear) and not hasattr(module, "_ark_plain_forward"):
            module._ark_plain_forward = module.forward  # type: ignore[assignment]
            module.forward = types.MethodType(_lean_lora_forward, module)  # type: ignore[method-assign]
            swapped["lora_linear"] += 1
        elif _is_swiglu_mlp(module) and not hasattr(module, "_ark_plain_forward"):
            module._ark_plain_forward = module.forward  # type: ignore[assignment]
            module.forward = types.MethodType(_lean_mlp_forward, module)  # type: ignore[method-assign]
            swapped["swiglu_mlp"] += 1
    return swapped
