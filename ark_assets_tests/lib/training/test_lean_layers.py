"""Lean saved activations: peft's LoRA and the SwiGLU MLP, the same maths, less kept."""

import copy
from typing import Any

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import Qwen2Config, Qwen2ForCausalLM

from ark_assets.lib.training.lean_layers import (
    LoraDelta,
    SwiGLU,
    SwiGLULoraDown,
    dropout_mask,
    make_lean,
)

LAYERS = 2


@pytest.fixture(scope="module")
def base() -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=128, hidden_size=32, intermediate_size=80, num_hidden_layers=LAYERS,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    return Qwen2ForCausalLM(config)


def _peft(base: Qwen2ForCausalLM, dropout: float, **lora: Any) -> Any:
    torch.manual_seed(1)  # one LoRA initialisation for the plain and the lean model
    model = get_peft_model(
        copy.deepcopy(base),
        LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, use_rslora=True,
                   target_modules="all-linear", **lora),
    )  # fmt: skip
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero, which would hide half the gradients
            torch.nn.init.normal_(parameter, std=0.1)
    return model.train()


def _step(model: Any, ids: torch.Tensor) -> tuple[float, dict[str, torch.Tensor]]:
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.item(), grads


def _saved_bytes(model: Any, ids: torch.Tensor) -> int:
    """Bytes the forward pass keeps for backward: distinct storages, parameters left out."""
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    sizes: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        pointer = tensor.untyped_storage().data_ptr()
        if pointer not in parameters:
            sizes[pointer] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(input_ids=ids, labels=ids)
    return sum(sizes.values())


def test_with_dropout_off_the_loss_and_every_gradient_are_peft_s(base) -> None:
    ids = torch.randint(0, 128, (2, 24), generator=torch.Generator().manual_seed(2))
    plain, lean = _peft(base, 0.0), _peft(base, 0.0)
    assert make_lean(lean) == {"lora_linear": 7 * LAYERS, "swiglu_mlp": LAYERS}
    plain_loss, plain_grads = _step(plain, ids)
    lean_loss, lean_grads = _step(lean, ids)
    assert lean_loss == pytest.approx(plain_loss, abs=1e-6)
    assert set(lean_grads) == set(plain_grads)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(lean_grads[name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_with_dropout_on_it_keeps_far_less_for_backward(base) -> None:
    ids = torch.randint(0, 128, (1, 48), generator=torch.Generator().manual_seed(3))
    plain, lean = _peft(base, 0.1), _peft(base, 0.1)
    make_lean(lean)
    plain_bytes, lean_bytes = _saved_bytes(plain, ids), _saved_bytes(lean, ids)
    # peft keeps two float copies of each of the 7 adapted inputs a layer; lean one per distinct
    # input (4) and a bool mask per module, and the MLP two tensors, not three: 0.64 of the bytes
    # on this model (the attention's and the loss's share, unchanged, is larger than SmolLM2's)
    assert lean_bytes < 0.7 * plain_bytes, (lean_bytes, plain_bytes)
    lean_loss, grads = _step(lean, ids)
    assert torch.isfinite(torch.tensor(lean_loss))
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads.values())


def _leaf(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64, requires_grad=True)


def _assert_same_values_and_gradients(
    out: torch.Tensor, reference: torch.Tensor, inputs: dict[str, torch.Tensor]
) -> None:
    torch.testing.assert_close(out, reference)
    upstream = torch.randn_like(out)
    got = torch.autograd.grad(out, tuple(inputs.values()), upstream)
    want = torch.autograd.grad(reference, tuple(inputs.values()), upstream)
    for name, g, w in zip(inputs, got, want, strict=True):
        torch.testing.assert_close(g, w, msg=name)


def test_the_delta_is_peft_s_with_the_same_mask() -> None:
    """Forward and every gradient against the reference formula under the drawn mask."""
    base_out, x, a, b = _leaf(3, 5, 8), _leaf(3, 5, 16), _leaf(4, 16), _leaf(8, 4)
    torch.manual_seed(5)
    out = LoraDelta.apply(base_out, x, a, b, 0.3, 2.0)
    torch.manual_seed(5)
    drop = dropout_mask(x, 0.3)
    reference = base_out + (torch.where(drop, 0.0, x) / 0.7) @ a.t() @ b.t() * 2.0
    _assert_same_values_and_gradients(out, reference, {"base": base_out, "x": x, "a": a, "b": b})


def test_the_mlp_with_lora_on_down_is_peft_s_with_the_same_mask() -> None:
    gate, up, a, b = _leaf(2, 5, 16), _leaf(2, 5, 16), _leaf(4, 16), _leaf(8, 4)
    weight, bias = torch.randn(8, 16, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    torch.manual_seed(3)
    out = SwiGLULoraDown.apply(gate, up, weight, bias, a, b, 0.3, 2.0)
    torch.manual_seed(3)
    hidden = torch.nn.functional.silu(gate) * up
    drop = dropout_mask(hidden, 0.3)
    dropped = torch.where(drop, 0.0, hidden) / 0.7
    reference = torch.nn.functional.linear(hidden, weight, bias) + dropped @ a.t() @ b.t() * 2.0
    _assert_same_values_and_gradients(out, reference, {"gate": gate, "up": up, "a": a, "b": b})


def test_the_swiglu_gradient_is_right() -> None:
    assert torch.autograd.gradcheck(SwiGLU.apply, (_leaf(4, 9), _leaf(4, 9)))


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_the_mask_drops_p_of_the_elements_independently_and_repeats_with_the_seed(p) -> None:
    like = torch.empty(1000, 1001)  # odd count: the last random word is half used
    torch.manual_seed(7)
    first = dropout_mask(like, p)
    torch.manual_seed(7)
    again = dropout_mask(like, p)
    assert first.shape == like.shape and first.dtype == torch.bool
    assert torch.equal(first, again)
    sigma = (p * (1 - p) / first.numel()) ** 0.5
    assert abs(first.float().mean().item() - p) < 5 * sigma
    # neighbours (the two halves of one random word) are independent
    pairs = first.flatten()[: 1000 * 1000].view(-1, 2).float()
    assert abs((pairs[:, 0] * pairs[:, 1]).mean().item() - p * p) < 5 * sigma
    assert not torch.equal(first, dropout_mask(like, p))


def test_what_it_does_not_know_keeps_peft_s_forward(base) -> None:
    """Eval mode and LoRA variants (DoRA) take peft's own path, so they stay right."""
    ids = torch.randint(0, 128, (1, 16), generator=torch.Generator().manual_seed(4))
    plain, lean = _peft(base, 0.1, use_dora=True), _peft(base, 0.1, use_dora=True)
    make_lean(lean)
    assert make_lean(lean) == {"lora_linear": 0, "swiglu_mlp": 0}  # not swapped twice
    plain.eval(), lean.eval()
    with torch.no_grad():
        torch.testing.assert_close(lean(input_ids=ids).logits, plain(input_ids=ids).logits)
    plain.train(), lean.train()
    torch.manual_seed(9)
    plain_loss = plain(input_ids=ids, labels=ids).loss
    torch.manual_seed(9)  # the MLP is lean, DoRA's LoRA is peft's: the same dropout draws
    lean_loss = lean(input_ids=ids, labels=ids).loss
    assert lean_loss.item() == pytest.approx(plain_loss.item(), abs=1e-6)


def test_under_bf16_autocast_it_trains_as_peft_does(base) -> None:
    """The GPU trainers run under autocast (bf16 products, fp32 LoRA weights): the lean backward
    must take the forward's dtypes and hand each parameter a gradient of its own dtype."""
    ids = torch.randint(0, 128, (1, 16), generator=torch.Generator().manual_seed(6))
    plain, lean = _peft(base, 0.0), _peft(base, 0.0)
    make_lean(lean)
    losses = []
    for model in (plain, lean):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()  # outside autocast, as CUDA's backward runs (on its own threads)
        losses.append(loss.item())
    plain_grads, lean_grads = (
        {n: p.grad for n, p in m.named_parameters() if p.requires_grad} for m in (plain, lean)
    )
    assert losses[1] == pytest.approx(losses[0], rel=1e-2)
    for name, grad in plain_grads.items():
        assert lean_grads[name].dtype == grad.dtype == torch.float32, name
        assert (
            torch.nn.functional.cosine_similarity(lean_grads[name].flatten(), grad.flatten(), dim=0)
            > 0.99
        ), name
