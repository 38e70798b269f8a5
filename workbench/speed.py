"""Training speed without changing what is learned.

Our SFT path differs from trl's defaults in ways that only remove wasted work; each batch, its
examples, its loss and its gradients stay the same (the bench's loss-equivalence check guards it):

- no activation checkpointing unless the config asks (stages.py: trl turns it on by default;
  recomputing every activation costs ~1/3 more compute);
- padding-free batches: trl concatenates a batch's examples into one row (no pad tokens), and
  `varlen_sdpa` below runs causal attention per example inside that row, so attention costs
  what the examples need rather than (sum of lengths)^2 under a block mask;
- the LM head scores only the positions that carry a label (trl's fused head already does
  this on CUDA; on CPU it scored every position, prompt tokens included), and on the CPU
  each chunk of those positions is projected once, not again in backward (label_head.py);
  under bf16 autocast the projections run in bf16 and the log-softmax and loss in fp32;
- plain LoRA layers run forward and backward as one autograd function with the rank-r products
  in the orientation the CPU BLAS is fast at (lora_fused.py), in bf16 under bf16 autocast.
"""

from __future__ import annotations

from contextlib import contextmanager

from . import label_head, lora_fused

ATTN_IMPLEMENTATION = "workbench_varlen"
_registered = False


def varlen_sdpa(
    module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None, **kwargs
):
    """SDPA that, given a padding-free row (batch 1 with cu_seq_lens_q from trl's collator),
    runs causal attention on each example separately. Anything else goes to plain SDPA."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    bounds = kwargs.get("cu_seq_lens_q")
    # anything but plain causal attention over a padding-free row (a sliding window, a bias, a
    # cache) takes SDPA with the mask transformers built for it, which is always correct
    plain = (
        bounds is not None
        and query.shape[0] == 1
        and query.shape[2] == key.shape[2]
        and kwargs.get("position_bias") is None
        and kwargs.get("sliding_window") is None
        and getattr(module, "sliding_window", None) is None
        and getattr(module, "is_causal", True)
    )
    if not plain:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    gqa = query.shape[1] != key.shape[1]
    outputs = []
    cuts = bounds.tolist()
    for start, end in zip(cuts[:-1], cuts[1:]):
        if end <= start:
            continue
        outputs.append(
            torch.nn.functional.scaled_dot_product_attention(
                query[:, :, start:end],
                key[:, :, start:end],
                value[:, :, start:end],
                dropout_p=dropout if module.training else 0.0,
                scale=scaling,
                is_causal=True,
                enable_gqa=gqa,
            )
        )
    out = torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    """Make `workbench_varlen` a known attention implementation (idempotent)."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTN_IMPLEMENTATION, varlen_sdpa)
    # the mask is the one SDPA gets: used whenever the batch is not padding-free
    AttentionMaskInterface.register(ATTN_IMPLEMENTATION, sdpa_mask)
    _registered = True


def can_use_varlen(model) -> bool:
    """Only models that run SDPA attention today switch; others keep what they have."""
    config = getattr(model, "config", None)
    return config is not None and getattr(config, "_attn_implementation", None) == "sdpa"


def use_varlen_attention(model) -> bool:
    """Switch the model's attention to `varlen_sdpa` for training; True if it switched."""
    if not can_use_varlen(model):
        return False
    register()
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.set_attn_implementation(ATTN_IMPLEMENTATION)
    return True


@contextmanager
def cpu_head_patches():
    """While our trainer computes a loss, trl's fused LM head (looked up in trl.trainer.utils at
    call time) scores only labelled positions on CPU/MPS too (trl compacts only on Triton
    devices, to avoid recompiles on XLA-like devices; on a CPU compacting is just less work),
    and runs through label_head on the CPU. Scoped, so trl used directly elsewhere in the same
    process (the bench's baseline, other trainers) stays exactly trl."""
    import trl.trainer.utils as trl_utils

    saved = trl_utils._use_triton, trl_utils._ChunkedLogProbFunction
    trl_utils._use_triton = lambda device: saved[0](device) or device.type in ("cpu", "mps")
    trl_utils._ChunkedLogProbFunction = label_head.LabelHeadDispatch(saved[1])
    try:
        yield
    finally:
        trl_utils._use_triton, trl_utils._ChunkedLogProbFunction = saved


def with_cpu_head(trainer) -> None:
    """Run `trainer.compute_loss` (training and evaluation) under cpu_head_patches. The head's
    backward needs no patch: autograd already holds the functions the forward used."""
    compute_loss = trainer.compute_loss

    def patched(*args, **kwargs):
        with cpu_head_patches():
            return compute_loss(*args, **kwargs)

    trainer.compute_loss = patched


def adapters_in_compute_dtype(model, dtype) -> int:
    """trl casts a quantized model's trainable adapter weights to bf16 (the QLoRA paper's
    choice for GPUs). On a CPU without bf16 that makes every adapter matmul ~100x slower, so
    when the run computes in fp32 the adapters are kept in fp32; a bf16 run on a CPU is mixed
    precision (autocast), whose master weights are fp32 too. Returns how many moved."""
    import torch

    from .models import autocast_on_cpu

    if dtype != torch.float32 and not autocast_on_cpu(dtype):
        return 0
    moved = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype == torch.bfloat16:
            param.data = param.data.to(torch.float32)
            moved += 1
    return moved


def is_prompt_learning(model) -> bool:
    """Prompt and prefix tuning (peft) add virtual tokens in front of every example."""
    peft_config = getattr(model, "active_peft_config", None)
    return bool(peft_config is not None and peft_config.is_prompt_learning)


# ---- the hook stages.py calls ------------------------------------------------------------
def prepare_sft(sft_args, model, make_trainer):
    """Set up our SFT/PT trainer for speed: `sft_args` (an SFTConfig) is adjusted before
    `make_trainer()` builds the SFTTrainer from it, the built trainer's model after."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    # padding-free only where we know attention keeps the examples apart: models on SDPA,
    # which switch to per-example attention below; not with prompt/prefix tuning, whose virtual
    # tokens make the sequence longer than the per-example positions describe
    if not sft_args.packing and can_use_varlen(base) and not is_prompt_learning(model):
        # examples arrive tokenized and already cut at cutoff_len: trl's own truncation is not
        # needed, and trl refuses max_length with padding-free batches that are not packed
        sft_args.padding_free = True
        sft_args.max_length = None
    trainer = make_trainer()
    if trainer.padding_free:
        use_varlen_attention(trainer.model)
    with_cpu_head(trainer)
    lora_fused.fuse_lora_layers(trainer.model)
    dtype = torch.bfloat16 if sft_args.bf16 else torch.float16 if sft_args.fp16 else torch.float32
    adapters_in_compute_dtype(trainer.model, dtype)
    return trainer
