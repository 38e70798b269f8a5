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
    assert torch.autograd.gradcheck(lambda h, w: label_head.LabelHeadLogProbs.apply(h, w, t, True, False)[:2], (h, w))
    hidden_only = h.detach().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda h: (
            label_head.LabelHeadLogProbs.apply(h, w.detach(), t, False, False)[0]
            * torch.linspace(-1, 2, len(t), dtype=torch.float64)
        ),
        (hidden_only,),
    )


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
    with torch.autocast("cpu", dtype=torch.float16):  # only bf16 autocast is ours
        assert dispatch.apply(h, w, None, t, 1.0, 512, None, 1.0, ("log_probs",)) == "trl"
    assert dispatch.apply(h, w, None, t, 1.0, 512, None, 1.0, ("log_probs", "mean_logits")) == "trl"
    assert len(calls) == 5
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


@pytest.mark.parametrize(
    "lora", [dict(lora_dropout=0.1), dict(use_dora=True), dict(lora_bias=True)], ids=["dropout", "dora", "adapter-bias"]
)
def test_fused_lora_leaves_other_variants_to_peft(lora):
    assert lora_fused.fuse_lora_layers(_lora_model(**lora)) == 0


def _close_in_bf16(a, b, rel=2e-2):
    """Within a bf16 tolerance: bf16 keeps 8 significant bits (~0.4%); sums of a few dozen
    rounded products stay within ~1-2% of the largest value."""
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    return (a.float() - b.float()).abs().max() <= rel * b.float().abs().max()


def test_fused_lora_under_bf16_autocast_matches_peft():
    """Mixed precision on a CPU: the fused products run in bf16 as autocast runs peft's, the
    output is bf16 and the adapter gradients fp32 (master weights), within a bf16 tolerance."""
    plain = _lora_model(lora_dropout=0.0)
    fused = copy.deepcopy(plain)
    lora_fused.fuse_lora_layers(fused)
    x = torch.randn(2, 7, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        results = [_forward_backward(model, x) for model in (plain, fused)]
    for a, b in zip(*results):
        assert _close_in_bf16(b, a)
    assert results[1][0].dtype == torch.bfloat16
    assert all(g.dtype == torch.float32 for g in results[1][2:])
    # the bf16 copy of the frozen base weight is remade when the weight changes in place
    with torch.no_grad():
        for module in fused.modules():
            if hasattr(module, "base_layer"):
                module.base_layer.weight.mul_(2)
        for module in plain.modules():
            if hasattr(module, "base_layer"):
                module.base_layer.weight.mul_(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert _close_in_bf16(fused(x), plain(x))


def test_fused_lora_leaves_fp16_autocast_to_peft():
    plain = _lora_model(lora_dropout=0.0)
    fused = copy.deepcopy(plain)
    lora_fused.fuse_lora_layers(fused)
    x = torch.randn(2, 7, 24)
    with torch.autocast("cpu", dtype=torch.float16):
        results = [_forward_backward(model, x) for model in (plain, fused)]
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize("trainable_head", [False, True], ids=["frozen-head", "trained-head"])
def test_head_under_bf16_autocast_matches_fp32_within_bf16(token_chunk, trainable_head):
    """Under CPU bf16 autocast our head projects in bf16 but returns fp32 log-probabilities and
    fp32 gradients, within a bf16 tolerance of the exact fp32 head (and of trl's under autocast)."""
    from trl.kernels import ChunkedLogProbFunction

    h, w, t = _head_inputs(torch.float32, tokens=300, hidden=32, vocab=2000)
    w.requires_grad_(trainable_head)
    outputs = ("log_probs", "entropy", "is_top1")
    ours = label_head.LabelHeadDispatch(ChunkedLogProbFunction)
    results = []
    for fn, autocast in ((ours, False), (ours, True), (ChunkedLogProbFunction, True)):
        h.grad = w.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            lp, ent, _, _, _ = fn.apply(h, w, None, t, 1.0, 512, None, 1.0, outputs)
        (-lp.sum() / len(t)).backward()
        results.append([lp.detach(), ent.detach(), h.grad.clone()] + ([w.grad.clone()] if trainable_head else []))
    exact, ours_bf16, trl_bf16 = results
    for a, b in zip(ours_bf16, exact):
        assert _close_in_bf16(a, b)  # fp32 outputs and gradients, bf16-close to fp32
    assert ours_bf16[0].dtype == torch.float32
    loss = [-r[0].mean().item() for r in results]
    assert abs(loss[1] - loss[0]) <= 1e-2 * loss[0]  # the loss within 1% of fp32
    assert abs(loss[1] - loss[2]) <= 1e-2 * loss[2]  # and of trl's own head under autocast
