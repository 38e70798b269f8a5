"""The two CPU speed-ups that replace library code on our SFT path compute what the library
computes: the LM head's log-probabilities (label_head.py) against trl's fused head and plain
autograd, and the fused LoRA layer (lora_fused.py) against peft's own forward and backward."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from workbench import label_head, lora_fused


def _head_inputs(dtype, tokens=37, hidden=16, vocab=101, seed=0):
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(tokens, hidden, generator=gen, dtype=dtype, requires_grad=True)
    w = torch.randn(vocab, hidden, generator=gen, dtype=dtype, requires_grad=True)
    t = torch.randint(0, vocab, (tokens,), generator=gen)
    return h, w, t


@pytest.fixture(params=[512, 8], ids=["one-chunk", "many-chunks"])
def token_chunk(request, monkeypatch):
    monkeypatch.setattr(label_head, "TOKEN_CHUNK", request.param)
    return request.param


def test_head_values_and_gradients_match_autograd(token_chunk):
    h, w, t = _head_inputs(torch.float64)
    log_probs, entropy, is_top1 = label_head.LabelHeadLogProbs.apply(h, w, t, True, True)
    ref = F.log_softmax(h @ w.t(), dim=-1)
    assert torch.allclose(log_probs, ref.gather(1, t[:, None]).squeeze(1), atol=1e-12)
    assert torch.allclose(entropy, -(ref.exp() * ref).sum(-1), atol=1e-12)
    assert torch.equal(is_top1, ref.argmax(-1) == t)
    # the mean NLL (what SFT minimises): the fast path, gradient taken in forward
    (-log_probs.mean()).backward()
    ours = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    (-ref.gather(1, t[:, None]).mean()).backward()
    assert torch.allclose(ours[0], h.grad, atol=1e-12) and torch.allclose(ours[1], w.grad, atol=1e-12)


def test_head_is_exact_for_any_incoming_gradient(token_chunk):
    """Per-token weights (DPO-like) and a gradient through the entropy take the recompute path;
    gradcheck compares with finite differences in float64."""
    h, w, t = _head_inputs(torch.float64, tokens=11, hidden=5, vocab=13)
    assert torch.autograd.gradcheck(
        lambda h, w: label_head.LabelHeadLogProbs.apply(h, w, t, True, False)[:2], (h, w))
    hidden_only = h.detach().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda h: label_head.LabelHeadLogProbs.apply(h, w.detach(), t, False, False)[0]
        * torch.linspace(-1, 2, len(t), dtype=torch.float64), (hidden_only,))


def test_head_matches_trls_fused_head_in_fp32():
    from trl.kernels import ChunkedLogProbFunction

    h, w, t = _head_inputs(torch.float32, tokens=300, hidden=32, vocab=2000)
    outputs = ("log_probs", "entropy", "is_top1")
    ours = label_head.LabelHeadDispatch(ChunkedLogProbFunction)
    results = []
    for fn in (ours, ChunkedLogProbFunction):
        h.grad = w.grad = None
        lp, ent, _, _, top = fn.apply(h, w, None, t, 1.0, 512, None, 1.0, outputs)
        (-lp.sum() / len(t)).backward()
        results.append((lp.detach(), ent.detach(), top, h.grad.clone(), w.grad.clone()))
    for a, b in zip(*results):
        assert a.dtype == b.dtype and torch.allclose(a.float(), b.float(), rtol=1e-4, atol=1e-5)


def test_head_leaves_what_it_does_not_handle_to_trl():
    calls = []

    class Original:
        @staticmethod
        def apply(*args):
            calls.append(args)
            return "trl"

    dispatch = label_head.LabelHeadDispatch(Original)
    h, w, t = _head_inputs(torch.float32)
    assert dispatch.apply(h, w, None, t, 0.7, 512, None, 1.0, ("log_probs",)) == "trl"  # temperature
    assert dispatch.apply(h, w, torch.zeros(len(w)), t, 1.0, 512, None, 1.0, ("log_probs",)) == "trl"
    assert dispatch.apply(h.bfloat16(), w.bfloat16(), None, t, 1.0, 512, None, 1.0, ("log_probs",)) == "trl"
    assert dispatch.apply(h, w, None, t, 1.0, 512, None, 1.0, ("log_probs", "mean_logits")) == "trl"
    assert len(calls) == 4
    assert dispatch.apply(h, w, None, t, 1.0, 512, None, 1.0, ("log_probs",))[0].shape == t.shape


# ---- fused LoRA ------------------------------------------------------------------------------
class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up = torch.nn.Linear(24, 40, bias=True)
        self.down = torch.nn.Linear(40, 24, bias=False)

    def forward(self, x):
        return self.down(torch.nn.functional.silu(self.up(x)))


def _lora_model(**lora):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(_Block(), LoraConfig(r=4, lora_alpha=8, target_modules=["up", "down"], **lora))
    with torch.no_grad():  # B starts at zero; make the adapters matter
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_()
    return model


def _forward_backward(model, x):
    x = x.clone().requires_grad_()
    y = model(x)
    y.backward(torch.linspace(-1, 1, y.numel()).view_as(y))
    return [y.detach(), x.grad] + [p.grad for _, p in sorted(model.named_parameters()) if p.requires_grad]


def test_fused_lora_computes_what_peft_computes():
    plain = _lora_model(lora_dropout=0.0)
    fused = copy.deepcopy(plain)
    assert lora_fused.fuse_lora_layers(fused) == 2
    x = torch.randn(2, 7, 24)
    for a, b in zip(_forward_backward(plain, x), _forward_backward(fused, x)):
        assert (a - b).abs().max() <= 1e-6 * a.abs().max()  # float rounding of other sum orders
    # switched-off adapters fall back to peft, which gives the base model's output
    with fused.disable_adapter(), plain.disable_adapter():
        assert torch.equal(fused(x), plain(x))
    # after a merge the layer is peft's again
    merged = copy.deepcopy(fused).merge_and_unload()
    assert torch.allclose(merged(x), plain(x), atol=1e-5)


@pytest.mark.parametrize("lora", [dict(lora_dropout=0.1), dict(use_dora=True), dict(lora_bias=True)],
                         ids=["dropout", "dora", "adapter-bias"])
def test_fused_lora_leaves_other_variants_to_peft(lora):
    assert lora_fused.fuse_lora_layers(_lora_model(**lora)) == 0


def test_fused_lora_steps_aside_under_autocast():
    """Mixed precision (bf16 autocast) goes through peft's modules, which handle the casts."""
    plain = _lora_model(lora_dropout=0.0)
    fused = copy.deepcopy(plain)
    lora_fused.fuse_lora_layers(fused)
    x = torch.randn(2, 7, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        results = [_forward_backward(model, x) for model in (plain, fused)]
    for a, b in zip(*results):
        assert torch.equal(a, b)
