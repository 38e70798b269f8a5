"""A LoRA linear layer's forward and backward as one autograd function (CPU-friendly order).

peft computes `base(x) + lora_B(lora_A(dropout(x))) * scaling` as separate modules, so autograd
runs the rank-r products as `[tokens, d] @ [d, r]` and the B gradient as `grad.T @ h`. On the
CPU BLAS those thin shapes run 3-7x slower than the same products written with the rank on the
left (`A @ x.T`, `h.T @ grad`), and the separate scaling multiply and the second input-gradient
sum each cost a pass over a [tokens, d] tensor. With 7 adapted layers per block that was about
a fifth of a LoRA step's linear-layer time on the default model.

`FusedLoraLinear` computes the same sums (float rounding aside) in the fast orientation, adds
the adapter's output into the base output in place and its input gradient into the base's.
It is used only where it is exactly peft's plain LoRA: a frozen nn.Linear base, one active
adapter, no dropout, no DoRA, no adapter bias, not merged. Anything else keeps peft's forward.

Under CPU bf16 autocast (mixed precision) the same products run in bf16, as autocast would run
them: the output is bf16, the gradients handed back are in the inputs' dtypes (fp32 for the
adapter's master weights). The frozen base weight's bf16 copy is kept between calls (autocast
re-casts weights that take no gradient on every call) and remade when the weight changes.
"""

from __future__ import annotations

import types

import torch


class FusedLoraLinear(torch.autograd.Function):
    """y = x W^T + b + scaling * (x A^T) B^T, with W and b frozen."""

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling: float, dtype):
        # dtype: the products' dtype (bf16 under autocast; `weight` and `bias` arrive in it),
        # None: everything in x's dtype
        ctx.in_dtypes = x.dtype, lora_a.dtype, lora_b.dtype
        if dtype is not None:
            x, lora_a, lora_b = x.to(dtype), lora_a.to(dtype), lora_b.to(dtype)
        flat = x.reshape(-1, x.shape[-1])
        out = torch.nn.functional.linear(flat, weight, bias)
        h_t = lora_a @ flat.t()  # [r, tokens]
        out.addmm_(h_t.t(), lora_b.t(), alpha=scaling)
        ctx.save_for_backward(flat, weight, lora_a, lora_b, h_t)
        ctx.scaling = scaling
        ctx.in_shape = x.shape
        return out.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_out):
        flat, weight, lora_a, lora_b, h_t = ctx.saved_tensors
        need_x, _, _, need_a, need_b, _, _ = ctx.needs_input_grad
        x_dtype, a_dtype, b_dtype = ctx.in_dtypes
        grad = grad_out.reshape(-1, grad_out.shape[-1]).to(weight.dtype)
        grad_h_t = (lora_b.t() @ grad.t()).mul_(ctx.scaling)  # [r, tokens]
        grad_x = grad_a = grad_b = None
        if need_x:
            grad_x = (grad @ weight).addmm_(grad_h_t.t(), lora_a).view(ctx.in_shape).to(x_dtype)
        if need_a:
            grad_a = (grad_h_t @ flat).to(a_dtype)
        if need_b:
            grad_b = (h_t @ grad).mul_(ctx.scaling).t().to(b_dtype)
        return grad_x, None, None, grad_a, grad_b, None, None


def _plain_lora_adapter(layer) -> str | None:
    """The adapter name if `layer` is exactly a plain LoRA around a frozen nn.Linear, else None."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    if type(layer) is not LoraLinear or type(layer.base_layer) is not torch.nn.Linear:
        return None
    if layer.merged or layer.disable_adapters or len(layer.active_adapters) != 1:
        return None
    name = layer.active_adapters[0]
    if name not in layer.lora_A or layer.use_dora.get(name, False):
        return None
    a, b = layer.lora_A[name], layer.lora_B[name]
    if a.bias is not None or b.bias is not None or not isinstance(layer.lora_dropout[name], torch.nn.Identity):
        return None
    base = layer.base_layer
    if base.weight.requires_grad or (base.bias is not None and base.bias.requires_grad):
        return None
    return name


def _fused_forward(self, x, *args, **kwargs):
    name = _plain_lora_adapter(self)
    if name is None or args or kwargs:
        return type(self).forward(self, x, *args, **kwargs)
    base, a, b = self.base_layer, self.lora_A[name].weight, self.lora_B[name].weight
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        # CPU bf16 mixed precision: the fused products in bf16; other autocasts keep peft's
        if x.device.type != "cpu" or dtype != torch.bfloat16:
            return type(self).forward(self, x, *args, **kwargs)
        weight, bias = (
            _frozen_copy(self, "weight", base.weight, dtype),
            None if base.bias is None else _frozen_copy(self, "bias", base.bias, dtype),
        )
        with torch.autocast(x.device.type, enabled=False):
            return FusedLoraLinear.apply(x, weight, bias, a, b, float(self.scaling[name]), dtype)
    if x.dtype != base.weight.dtype or x.dtype != a.dtype:
        return type(self).forward(self, x, *args, **kwargs)
    return FusedLoraLinear.apply(x, base.weight, base.bias, a, b, float(self.scaling[name]), None)


def _frozen_copy(layer, what: str, tensor, dtype):
    """`tensor` (frozen) in `dtype`, cast once and kept until the tensor changes in place."""
    cache = layer.__dict__.setdefault("_fused_casts", {})
    stamp = (tensor.data_ptr(), tensor._version, dtype)
    found = cache.get(what)
    if found is None or found[0] != stamp:
        found = cache[what] = (stamp, tensor.detach().to(dtype))
    return found[1]


def fuse_lora_layers(model) -> int:
    """Route every plain LoRA linear layer of `model` through FusedLoraLinear; return how many.
    Each layer re-checks at call time (adapters switched off, merged, ...) and falls back."""
    fused = 0
    for module in model.modules():
        if _plain_lora_adapter(module) is not None and "forward" not in vars(module):
            module.forward = types.MethodType(_fused_forward, module)
            fused += 1
    return fused
