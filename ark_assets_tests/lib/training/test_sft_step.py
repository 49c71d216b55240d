"""One SFT step's pieces: the labelled-only loss, packing and its attention, MedArk's padding."""

from pathlib import Path

import pytest
import torch

from ark_assets.lib.training.sft_step import (
    IGNORE_INDEX,
    PACKED_ATTENTION,
    causal_lm_loss,
    labelled_cross_entropy,
    pack,
    pad_to_length,
    peft_lora_config,
    register_packed_attention,
    token_budget_batches,
)


@pytest.mark.parametrize("chunk_rows", [1, 7, 1000])
def test_labelled_loss_and_gradients_equal_cross_entropy_over_full_logits(chunk_rows: int) -> None:
    torch.manual_seed(0)
    hidden = torch.randn(3, 13, 16, requires_grad=True)
    head = torch.nn.Linear(16, 50, bias=True)
    targets = torch.randint(0, 50, (3, 13))
    targets[:, :5] = IGNORE_INDEX  # a prompt
    targets[1, -1] = IGNORE_INDEX

    loss = labelled_cross_entropy(hidden, head, targets, chunk_bytes=4 * 50 * chunk_rows)
    loss.backward()
    ours = [hidden.grad.clone(), head.weight.grad.clone(), head.bias.grad.clone()]
    hidden.grad, head.weight.grad, head.bias.grad = None, None, None
    expected = torch.nn.functional.cross_entropy(
        head(hidden).reshape(-1, 50), targets.reshape(-1), ignore_index=IGNORE_INDEX
    )
    expected.backward()

    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    for got, want in zip(ours, [hidden.grad, head.weight.grad, head.bias.grad], strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_labelled_loss_divides_by_the_items_of_the_whole_update() -> None:
    hidden, head = torch.randn(4, 8), torch.nn.Linear(8, 10)
    targets = torch.tensor([1, IGNORE_INDEX, 3, 4])
    mean = labelled_cross_entropy(hidden, head, targets)
    assert labelled_cross_entropy(hidden, head, targets, num_items=6).item() == pytest.approx(
        mean.item() * 3 / 6
    )


def test_labelled_loss_refuses_a_head_it_cannot_differentiate() -> None:
    with pytest.raises(ValueError, match=r"plain torch\.nn\.Linear"):
        labelled_cross_entropy(torch.randn(2, 4), torch.nn.Embedding(4, 4), torch.tensor([1, 2]))


def _features(lengths: list[int]) -> list[dict]:
    generator = torch.Generator().manual_seed(1)
    features = []
    for n in lengths:
        ids = torch.randint(0, 1000, (n,), generator=generator).tolist()
        prompt = n // 2
        features.append({"input_ids": ids, "labels": [IGNORE_INDEX] * prompt + ids[prompt:]})
    return features


def test_pad_to_length_pads_every_example_and_refuses_longer_ones() -> None:
    batch = pad_to_length(_features([5, 3]), 8, pad_id=99)
    assert batch["input_ids"].shape == (2, 8)
    assert batch["attention_mask"].sum(dim=1).tolist() == [5, 3]
    assert (batch["input_ids"][1, 3:] == 99).all() and (batch["labels"][1, 3:] == -100).all()
    with pytest.raises(ValueError, match="never truncated"):
        pad_to_length(_features([9]), 8, pad_id=99)


def test_token_budget_batches_fill_rows_in_order() -> None:
    lengths = [5, 4, 3, 9, 2, 2]
    assert token_budget_batches(range(6), lengths, 9) == [[0, 1], [2], [3], [4, 5]]


def _lora_model(path: Path, attention: str):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    register_packed_attention()
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attention)
    config = peft_lora_config(8, 16, 0.0, True, "all-linear")
    torch.manual_seed(2)
    model = get_peft_model(model, config)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # a fresh LoRA is zero: make its gradients depend on the path
            torch.nn.init.normal_(parameter, std=0.05)
    return model


def _lora_gradients(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_packed_rows_give_the_padded_batch_loss_and_gradients(tiny_model: Path) -> None:
    """Three examples of different lengths: the model's own loss on a padded batch equals our
    loss on one packed row with ark_packed attention (so no example attends to another), and
    so do the LoRA gradients."""
    features = _features([40, 25, 61])
    padded_model = _lora_model(tiny_model, "sdpa")
    packed_model = _lora_model(tiny_model, PACKED_ATTENTION)

    padded = padded_model(**pad_to_length(features, 64, pad_id=151643)).loss
    padded.backward()
    packed = causal_lm_loss(packed_model, pack(features))
    packed.backward()

    assert packed.item() == pytest.approx(padded.item(), abs=1e-5)
    want, got = _lora_gradients(padded_model), _lora_gradients(packed_model)
    assert want.keys() == got.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-6, rtol=1e-4, msg=name)


def test_packed_attention_refuses_a_batch_of_several_rows(tiny_model: Path) -> None:
    model = _lora_model(tiny_model, PACKED_ATTENTION)
    with pytest.raises(ValueError, match="one packed row"):
        model(input_ids=torch.tensor([[1, 2, 3], [4, 5, 6]]))
