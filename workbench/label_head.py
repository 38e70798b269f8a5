"""The LM head's log-probabilities for labelled positions, with their gradient taken in the
forward pass (CPU, fp32 or bf16 autocast).

trl's fused head (`trl.kernels.ChunkedLogProbFunction`) never builds the full [tokens, vocab]
logits: it projects a tile, folds it into running statistics, and in backward projects the
tile again. On a GPU the recomputation is cheap next to the memory it saves; on a CPU it is a
third vocabulary-sized matmul plus several passes over every tile, which made the head about
a quarter of a LoRA step on the default model.

Here each chunk of tokens is projected once. Because a token's log-probability depends only on
its own hidden state, d logp_i / d h_i = (onehot_i - softmax_i) @ W is known in the forward
pass; backward only scales it by the incoming per-token gradient. The weight gradient (full
fine-tuning with a trainable head) is summed in forward under the assumption that every token's
incoming gradient is the same number, which is what a mean or summed NLL gives; backward checks
that and recomputes exactly when it does not hold, or when a gradient reaches the entropy.

Under CPU bf16 autocast (mixed precision) the three projections (logits, input gradient, weight
gradient) run in bf16, where AMX makes them several times faster, while the log-softmax, the
log-probabilities (and so the loss) and every gradient handed back stay fp32.
"""

from __future__ import annotations

import torch

# tokens projected at once: two [chunk, vocab] fp32 tensors live at a time (~200 MB at 49k vocab)
TOKEN_CHUNK = 512
SUPPORTED_OUTPUTS = ("log_probs", "entropy", "is_top1")
LOW_PRECISION = (torch.bfloat16, torch.float16)


def _result_dtype(product_dtype):
    """Log-softmax, log-probabilities and gradients: fp32 when the products run in bf16."""
    return torch.float32 if product_dtype in LOW_PRECISION else product_dtype


def _chunk_statistics(hidden_chunk, weight, targets_chunk):
    """Project one chunk; return (log-softmax, softmax, log-prob of target, entropy), all in
    fp32 whatever the product's dtype (`hidden_chunk` and `weight` share it)."""
    logp = hidden_chunk @ weight.t()
    if logp.dtype in LOW_PRECISION:
        logp = logp.float()
    logp -= torch.logsumexp(logp, dim=-1, keepdim=True)
    probs = logp.exp()
    target_logp = logp.gather(1, targets_chunk[:, None]).squeeze(1)
    entropy = -torch.bmm(probs.unsqueeze(1), logp.unsqueeze(2)).view(-1)
    return logp, probs, target_logp, entropy


def _hidden_and_weight_gradients(grad, h, weight, grad_hidden_rows, grad_weight) -> None:
    """grad_hidden_rows = grad @ W, grad_weight += grad^T @ h, in the dtype of `weight`
    (fp32, or bf16 under autocast; the results land in fp32 tensors)."""
    if weight.dtype not in LOW_PRECISION:
        if grad_hidden_rows is not None:
            torch.mm(grad, weight, out=grad_hidden_rows)
        if grad_weight is not None:
            grad_weight.addmm_(grad.t(), h)
        return
    grad = grad.to(weight.dtype)
    if grad_hidden_rows is not None:
        grad_hidden_rows.copy_(grad @ weight)
    if grad_weight is not None:
        grad_weight += grad.t() @ h


def _logits_gradient(logp, probs, targets_chunk, grad_logp, grad_entropy=None, entropy=None):
    """d(sum grad_logp*logp_target + grad_entropy*entropy)/d logits, in place over `probs`.
    grad_logp: per-token tensor, 1.0 (the unit gradient), or None (no gradient)."""
    grad = probs
    if grad_entropy is not None:
        # d entropy / d z = -p * (log p + entropy)
        ent_term = (logp + entropy[:, None]).mul_(probs).mul_(-grad_entropy[:, None])
    # d log p_target / d z = onehot - p
    grad.neg_()
    grad[torch.arange(len(targets_chunk)), targets_chunk] += 1
    if grad_logp is None:
        grad.zero_()
    elif isinstance(grad_logp, torch.Tensor):
        grad.mul_(grad_logp[:, None])
    if grad_entropy is not None:
        grad += ent_term
    return grad


class LabelHeadLogProbs(torch.autograd.Function):
    """(hidden [N, H], weight [V, H], targets [N]) -> log-probs [N], entropy [N], is_top1 [N]."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, want_entropy: bool, want_top1: bool, product_dtype=None):
        ctx.set_materialize_grads(False)
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        product_dtype = product_dtype or hidden.dtype
        result = _result_dtype(product_dtype)
        n_tokens = hidden.shape[0]
        log_probs = hidden.new_empty(n_tokens, dtype=result)
        entropy = hidden.new_empty(n_tokens, dtype=result)
        is_top1 = torch.empty(n_tokens, dtype=torch.bool, device=hidden.device)
        unit_hidden_grad = hidden.new_empty(hidden.shape, dtype=result) if need_hidden else None
        unit_weight_grad = torch.zeros_like(weight, dtype=result) if need_weight else None
        # the products in product_dtype (one cast of the weight per call), the rest in fp32;
        # casts are explicit, so autocast is off in here
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(product_dtype)
            for start in range(0, n_tokens, TOKEN_CHUNK):
                rows = slice(start, min(start + TOKEN_CHUNK, n_tokens))
                h, t = hidden[rows].to(product_dtype), targets[rows]
                logp, probs, log_probs[rows], entropy[rows] = _chunk_statistics(h, w, t)
                if want_top1:
                    is_top1[rows] = logp.argmax(dim=-1) == t
                if need_hidden or need_weight:
                    grad = _logits_gradient(logp, probs, t, 1.0)
                    _hidden_and_weight_gradients(
                        grad, h, w, unit_hidden_grad[rows] if need_hidden else None, unit_weight_grad
                    )
        ctx.product_dtype = product_dtype
        ctx.input_dtypes = hidden.dtype, weight.dtype
        ctx.save_for_backward(hidden, weight, targets, unit_hidden_grad, unit_weight_grad)
        ctx.mark_non_differentiable(is_top1)
        return log_probs, entropy if want_entropy else None, is_top1 if want_top1 else None

    @staticmethod
    def backward(ctx, grad_logp, grad_entropy, _grad_top1):
        hidden, weight, targets, unit_hidden_grad, unit_weight_grad = ctx.saved_tensors
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        none = (None,) * 6
        if grad_logp is None and grad_entropy is None:
            return none
        result = _result_dtype(ctx.product_dtype)
        grad_logp = None if grad_logp is None else grad_logp.to(result)
        grad_entropy = None if grad_entropy is None else grad_entropy.to(result)
        uniform = grad_logp is not None and bool((grad_logp == grad_logp[0]).all())
        if grad_entropy is None and (uniform or not need_weight):
            grad_hidden = unit_hidden_grad * grad_logp[:, None] if need_hidden else None
            grad_weight = unit_weight_grad * grad_logp[0] if need_weight else None
        else:
            grad_hidden, grad_weight = _recompute_gradients(
                hidden, weight, targets, grad_logp, grad_entropy, need_hidden, need_weight, ctx.product_dtype
            )
        hidden_dtype, weight_dtype = ctx.input_dtypes
        if grad_hidden is not None:
            grad_hidden = grad_hidden.to(hidden_dtype)
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight_dtype)
        return grad_hidden, grad_weight, *none[2:]


def _recompute_gradients(
    hidden, weight, targets, grad_logp, grad_entropy, need_hidden, need_weight, product_dtype=None
):
    """The exact gradients for any incoming per-token gradients (projects every chunk again)."""
    product_dtype = product_dtype or hidden.dtype
    result = _result_dtype(product_dtype)
    grad_hidden = torch.empty_like(hidden, dtype=result) if need_hidden else None
    grad_weight = torch.zeros_like(weight, dtype=result) if need_weight else None
    with torch.autocast(hidden.device.type, enabled=False):
        w = weight.to(product_dtype)
        for start in range(0, hidden.shape[0], TOKEN_CHUNK):
            rows = slice(start, min(start + TOKEN_CHUNK, hidden.shape[0]))
            h, t = hidden[rows].to(product_dtype), targets[rows]
            logp, probs, _, entropy = _chunk_statistics(h, w, t)
            grad = _logits_gradient(
                logp,
                probs,
                t,
                None if grad_logp is None else grad_logp[rows],
                None if grad_entropy is None else grad_entropy[rows],
                entropy,
            )
            _hidden_and_weight_gradients(grad, h, w, grad_hidden[rows] if need_hidden else None, grad_weight)
    return grad_hidden, grad_weight


def product_dtype(hidden, weight):
    """The dtype the head's products run in: bf16 under CPU bf16 autocast (mixed precision),
    else fp32. None: a case this head does not take (trl's function runs it)."""
    if (
        hidden.device.type != "cpu"
        or weight.dtype != torch.float32
        or hidden.dtype not in (torch.float32, torch.bfloat16)
    ):
        return None
    if torch.is_autocast_enabled("cpu"):
        return torch.bfloat16 if torch.get_autocast_dtype("cpu") == torch.bfloat16 else None
    return torch.float32 if hidden.dtype == torch.float32 else None


def handles(hidden, weight, bias, temperature, softcap, logit_scale, outputs) -> bool:
    """Plain heads on the CPU, fp32 or under bf16 autocast; anything else stays with trl's."""
    return (
        product_dtype(hidden, weight) is not None
        and bias is None
        and temperature == 1.0
        and softcap is None
        and logit_scale == 1.0
        and all(name in SUPPORTED_OUTPUTS for name in outputs)
    )


class LabelHeadDispatch:
    """Stands in for trl's `_ChunkedLogProbFunction`: same `apply` signature and outputs."""

    def __init__(self, original):
        self.original = original

    def apply(
        self,
        hidden,
        weight,
        bias,
        targets,
        temperature,
        chunk_size,
        final_logit_softcapping=None,
        logit_scale=1.0,
        outputs=SUPPORTED_OUTPUTS,
    ):
        if not handles(hidden, weight, bias, temperature, final_logit_softcapping, logit_scale, outputs):
            return self.original.apply(
                hidden, weight, bias, targets, temperature, chunk_size, final_logit_softcapping, logit_scale, outputs
            )
        log_probs, entropy, is_top1 = LabelHeadLogProbs.apply(
            hidden, weight, targets, "entropy" in outputs, "is_top1" in outputs, product_dtype(hidden, weight)
        )
        return log_probs, entropy, None, None, is_top1
