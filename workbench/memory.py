"""Before Start: how many parameters a run trains, and how much memory it needs.

The model is built from its config on the `meta` device (no weights are read, no memory is
used) and the method is applied to it, so the trainable count is exact. The memory estimate
adds up, in bytes:

  weights      every parameter at its stored width (4/8-bit for quantized linear layers)
  gradients    one per trainable parameter
  optimizer    AdamW: two moments per trainable parameter, in its type (8-bit Adam: two bytes)
  activations  what the backward pass keeps for batch x cutoff tokens: per layer and token the
               hidden-, key/value- and MLP-width vectors autograd saves (sdpa runs as flash
               attention, on CPUs too: no length x length scores; on a CPU x1.4, measured),
               and the logits over the vocabulary (on our CPU SFT/PT path two chunks of them)
  overhead     the runtime itself (Python, torch and libraries on a CPU; the CUDA context)

and compares the sum with the memory of the device the run will use. The error against real
peaks is measured by scripts/measure_memory.py and kept in tests/test_memory.py.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

GIB = 1024 ** 3
# resident memory of a training process before the model: a fresh process that has imported
# torch, transformers, trl, peft, datasets and workbench.train measures 0.47 GiB
CPU_OVERHEAD = int(0.47 * GIB)
# On a CPU the activation peak is ~1.4x what autograd saves (the backward pass allocates its
# gradients while the saved tensors are still alive, plus allocator slack): the slope of the
# measured LoRA peaks against tokens (2 x 256 and 4 x 512, scripts/measure_memory.py).
CPU_ACTIVATION_FACTOR = 1.4
# With activation checkpointing the CPU peaks grew ~0.4x as fast with tokens as without
# (measured at 4 x 512), well above the block inputs alone: recomputing a block and running its
# backward allocate as much again, and checkpointing's own bookkeeping keeps more.
CPU_CHECKPOINT_SHARE = 0.4
CUDA_OVERHEAD = int(0.6 * GIB)  # CUDA context and kernels
HEADROOM = 0.9  # a run "fits" when it needs at most this share of what is free


@dataclass
class MemoryEstimate:
    trainable: int
    total: int
    weights: int
    gradients: int
    optimizer: int
    activations: int
    overhead: int
    device: str
    device_total: int
    device_free: int

    @property
    def needed(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.overhead

    @property
    def share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    @property
    def fits(self) -> bool:
        return self.needed <= HEADROOM * self.device_free

    def parts(self) -> dict[str, int]:
        return {"weights": self.weights, "gradients": self.gradients, "optimizer": self.optimizer,
                "activations": self.activations, "overhead": self.overhead}


class EstimateError(RuntimeError):
    pass


# ---- the model on the meta device -----------------------------------------------------------
def model_config(name: str, trust_remote_code: bool = False):
    """The model's config (a local folder, a known name, or a hub id when a hub is reachable)."""
    from transformers import AutoConfig

    from .models import resolve_model_path

    try:
        return AutoConfig.from_pretrained(resolve_model_path(name), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EstimateError(f"cannot read the config of '{name}': {text}") from None


LOGIT_BYTES_ADAPTER, LOGIT_BYTES_PLAIN = 32, 12
HEAD_OUTPUTS = {"cls": 2, "rm": 1}  # stages trained with a sequence-classification head
PAIRED_STAGES = ("dpo", "rm")  # each row is a chosen and a rejected sequence


def meta_model(cfg, config):
    """The model with the method applied, built without memory (weights on `meta`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from . import methods

    # PiSSA needs real weights (an SVD) and quantization needs real kernels; neither changes
    # which parameters train, so they are left out of the shape-only model
    shape_cfg = copy.copy(cfg)
    shape_cfg.pissa_init, shape_cfg.quantization_bit, shape_cfg.dropout = False, None, None
    if getattr(cfg, "adapter_name_or_path", None):  # a continued adapter has its own shape
        shape_cfg.adapter_name_or_path = None
        adapter = methods.read_adapter_config(cfg.adapter_name_or_path)
        shape_cfg.lora_rank = adapter.get("r") or shape_cfg.lora_rank
        targets = adapter.get("target_modules")
        if isinstance(targets, list):
            shape_cfg.lora_target = ",".join(targets)
    with torch.device("meta"):
        if cfg.stage in HEAD_OUTPUTS:
            config = copy.copy(config)
            config.num_labels = HEAD_OUTPUTS[cfg.stage]
            model = AutoModelForSequenceClassification.from_config(config)
        else:
            model = AutoModelForCausalLM.from_config(config)
    return methods.apply_method(model, shape_cfg)


def quantizable_parameters(model) -> int:
    """Weights of the linear layers inside the transformer blocks: what bitsandbytes quantizes."""
    import torch

    from .methods import decoder_layers

    total = 0
    for layer in decoder_layers(model):
        for module in layer.modules():
            if isinstance(module, torch.nn.Linear) and not _is_adapter(module):
                total += module.weight.numel()
    return total


def _is_adapter(module) -> bool:
    return type(module).__module__.startswith("peft.")


# ---- the arithmetic ---------------------------------------------------------------------------
def dtype_bytes(cfg, device: str) -> int:
    from .models import pick_compute_dtype

    import torch

    return 4 if pick_compute_dtype(cfg.compute_type, device) == torch.float32 else 2


def weight_bytes(total: int, quantizable: int, cfg, width: int) -> int:
    if cfg.quantization_bit == 4:
        # 4 bits per weight plus an fp32 scale per block of 64 (8 bits per block when the
        # scales are themselves quantized)
        per_weight = 0.5 + (1.0 / 64 + 4.0 / (64 * 256) if cfg.double_quantization else 4.0 / 64)
        return int(quantizable * per_weight + (total - quantizable) * width)
    if cfg.quantization_bit == 8:
        return int(quantizable * 1.0 + (total - quantizable) * width)
    return total * width


def optimizer_bytes(cfg, trainable: int, train_width: int = 4) -> int:
    optim = cfg.optim
    if optim in ("adamw_bnb_8bit", "paged_adamw_8bit"):
        return 2 * trainable
    if optim == "sgd":
        return 0
    if optim == "adafactor":
        return trainable  # factored second moments: far below one value per parameter
    return 2 * train_width * trainable  # AdamW: exp_avg and exp_avg_sq, in the parameters' type


def saved_per_token_layer(config) -> int:
    """Values autograd keeps per token in one decoder block for the backward pass, counted with
    saved-tensor hooks (tests/test_memory.py): the two norms' inputs and outputs, q/k/v after
    RoPE, the attention output and its reshaped copy, and the MLP's gate, up, activation and
    product. torch runs sdpa as flash attention on CPUs too (ScaledDotProductFlashAttentionForCpu),
    as on GPUs: it keeps no length x length scores, so this grows with tokens, not length squared."""
    h = config.hidden_size
    inter = getattr(config, "intermediate_size", None) or 4 * h
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    kv = head_dim * (getattr(config, "num_key_value_heads", None) or heads)
    return 8 * h + 2 * kv + 4 * inter


def activation_bytes(cfg, config, width: int, trainable: int, device: str = "cpu") -> int:
    if trainable == 0:
        return 0
    sequences = cfg.per_device_train_batch_size * (2 if cfg.stage in PAIRED_STAGES else 1)
    tokens = sequences * (cfg.cutoff_len + _virtual_tokens(cfg))
    h = config.hidden_size
    layers = config.num_hidden_layers
    # the same graph on every device (the peaks behind the logits term below are CPU ones)
    per_token_layer = saved_per_token_layer(config)
    # freeze tuning needs no backward pass through the frozen blocks below the trained ones
    kept = min(cfg.freeze_trainable_layers, layers) if cfg.finetuning_type == "freeze" else layers
    if cfg.finetuning_type == "head":  # only the head learns: nothing flows back into the body
        kept, per_token_layer = 0, 0
    if device == "cpu":
        body = tokens * kept * per_token_layer * width * CPU_ACTIVATION_FACTOR
        if cfg.activation_checkpointing:
            body *= CPU_CHECKPOINT_SHARE
    elif cfg.activation_checkpointing:
        # only each block's input is kept; one block is recomputed at a time
        body = tokens * (kept * h + per_token_layer) * width
    else:
        body = tokens * kept * per_token_layer * width
    return int(body + head_bytes(cfg, config, tokens, sequences, width, device))


def head_bytes(cfg, config, tokens: int, sequences: int, width: int, device: str) -> int:
    """Memory of the output head's logits at the peak."""
    from .label_head import TOKEN_CHUNK

    if device == "cpu" and width == 4 and cfg.stage in ("sft", "pt"):
        # our SFT/PT path (label_head.py): two [chunk, vocab] fp32 tensors at a time, and with
        # a trainable head (full) its gradient summed once more in forward
        trained_head = config.vocab_size * config.hidden_size * 4 if cfg.finetuning_type == "full" else 0
        return 2 * min(tokens, TOKEN_CHUNK) * config.vocab_size * 4 + trained_head
    outputs = HEAD_OUTPUTS.get(cfg.stage, config.vocab_size)
    positions = sequences if cfg.stage in HEAD_OUTPUTS else tokens
    # logits, log-softmax, gradients and trl's entropy/accuracy temporaries: measured at ~8 fp32
    # copies at the peak with an adapter (peft) model, ~3 with a plain one (before our own head)
    adapter = cfg.finetuning_type in ("lora", "ia3", "prompt_tuning", "prefix_tuning")
    return positions * outputs * (LOGIT_BYTES_ADAPTER if adapter else LOGIT_BYTES_PLAIN)


def _virtual_tokens(cfg) -> int:
    return cfg.num_virtual_tokens if cfg.finetuning_type in ("prompt_tuning", "prefix_tuning") else 0


def device_memory(device: str) -> tuple[int, int]:
    """(total, free) bytes of the device a run will use."""
    if device == "cuda":
        import torch

        free, total = torch.cuda.mem_get_info()
        return total, free
    import psutil

    memory = psutil.virtual_memory()
    return memory.total, memory.available


def estimate(cfg, config=None, device: str | None = None) -> MemoryEstimate:
    """Trainable parameters and memory of a run, without loading any weights."""
    from .methods import PEFT_METHODS, count_parameters
    from .models import device_type

    config = config or model_config(cfg.model_name_or_path, getattr(cfg, "trust_remote_code", False))
    device = device or device_type()
    model = meta_model(cfg, config)
    summary = count_parameters(model)
    width = dtype_bytes(cfg, device)
    # trainable parameters of adapters are kept in fp32 by peft; full/freeze use the model's width
    train_width = 4 if cfg.finetuning_type in ("lora", "ia3", "prompt_tuning", "prefix_tuning") else width
    total_dev, free_dev = device_memory(device)
    weights = weight_bytes(summary.total, quantizable_parameters(model), cfg, width)
    if cfg.stage in ("dpo", "kto") and cfg.use_ref_model and cfg.finetuning_type not in PEFT_METHODS:
        weights *= 2  # a frozen copy of the model as the reference (adapters just switch off)
    return MemoryEstimate(
        trainable=summary.trainable, total=summary.total,
        weights=weights,
        gradients=summary.trainable * train_width,
        optimizer=optimizer_bytes(cfg, summary.trainable, train_width),
        activations=activation_bytes(cfg, config, width, summary.trainable, device),
        overhead=CUDA_OVERHEAD if device == "cuda" else CPU_OVERHEAD,
        device=device, device_total=total_dev, device_free=free_dev)


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"
