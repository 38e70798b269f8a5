"""Before Start: how many parameters a run trains, and how much memory it needs.

The model is built from its config on the `meta` device (no weights are read, no memory is
used) and the method is applied to it, so the trainable count is exact. The memory estimate
adds up, in bytes:

  weights      every parameter at its stored width (4/8-bit for quantized linear layers)
  gradients    one per trainable parameter
  optimizer    AdamW: two moments per trainable parameter, in its type (8-bit Adam: two bytes)
  activations  what the backward pass keeps for the largest batch: with a dataset, the real
               lengths as the run batches them (padding-free: the sum of the batch's largest
               examples; padded: batch x longest; packed: batch x cutoff), else (and always as
               the worst case beside it) batch x cutoff tokens; per layer and token the
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

GIB = 1024**3
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
    # the worst case: every sequence of the batch as long as the cutoff
    worst_activations: int = 0
    batch_tokens: int = 0  # tokens of the largest batch the activations term is for
    worst_batch_tokens: int = 0  # batch x cutoff
    from_data: bool = False  # batch_tokens comes from the dataset's real lengths

    @property
    def worst_needed(self) -> int:
        return self.needed - self.activations + max(self.worst_activations, self.activations)

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
        return {
            "weights": self.weights,
            "gradients": self.gradients,
            "optimizer": self.optimizer,
            "activations": self.activations,
            "overhead": self.overhead,
        }


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
def dtype_bytes(cfg, device: str, config=None) -> int:
    import torch

    from .models import compute_dtype_for_model, pick_compute_dtype

    dtype = (
        compute_dtype_for_model(cfg.compute_type, config, device)
        if config is not None
        else pick_compute_dtype(cfg.compute_type, device)
    )
    return 4 if dtype == torch.float32 else 2


def mixed_on_cpu(cfg, device: str, width: int) -> bool:
    """bf16 training on a CPU is mixed precision: fp32 weights, bf16 products (autocast)."""
    return device == "cpu" and width == 2 and cfg.compute_type != "fp16"


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


def largest_batch_tokens(cfg, lengths: list[int] | None) -> int:
    """Tokens of the largest batch this run can build: from the data's lengths (each already
    cut at cutoff_len) as the run batches them, or batch x cutoff without data."""
    sequences = cfg.per_device_train_batch_size * (2 if cfg.stage in PAIRED_STAGES else 1)
    worst = sequences * (cfg.cutoff_len + _virtual_tokens(cfg))
    lengths = [min(n, cfg.cutoff_len) + _virtual_tokens(cfg) for n in (lengths or []) if n > 0]
    if not lengths:
        return worst
    from .data import packing_enabled

    batch = cfg.per_device_train_batch_size
    if packing_enabled(cfg):
        # packed rows are filled up to the cutoff: only a dataset shorter than one batch of
        # rows makes the batch smaller
        return min(worst, sum(lengths) * (2 if cfg.stage in PAIRED_STAGES else 1))
    longest = sorted(lengths, reverse=True)
    if padding_free(cfg):
        # one row of the batch's examples, no padding: the batch of the longest examples
        return sum(longest[:batch])
    # padded to the batch's longest (a pair's two answers are padded together)
    return min(batch, len(longest)) * longest[0] * (2 if cfg.stage in PAIRED_STAGES else 1)


def padding_free(cfg) -> bool:
    """Our SFT/PT path batches without padding (speed.prepare_sft) unless packing is on or the
    method adds virtual tokens."""
    from .data import packing_enabled

    return (
        cfg.stage in ("sft", "pt")
        and not packing_enabled(cfg)
        and cfg.finetuning_type not in ("prompt_tuning", "prefix_tuning")
    )


def activation_bytes(cfg, config, width: int, trainable: int, device: str = "cpu", tokens: int | None = None) -> int:
    if trainable == 0:
        return 0
    sequences = cfg.per_device_train_batch_size * (2 if cfg.stage in PAIRED_STAGES else 1)
    tokens = tokens or sequences * (cfg.cutoff_len + _virtual_tokens(cfg))
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

    if device == "cpu" and cfg.stage in ("sft", "pt"):
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


def estimate(cfg, config=None, device: str | None = None, lengths: list[int] | None = None) -> MemoryEstimate:
    """Trainable parameters and memory of a run, without loading any weights. `lengths`: the
    tokenized examples' lengths (data_lengths), for the activations of the largest real batch."""
    from .methods import PEFT_METHODS, count_parameters
    from .models import device_type

    config = config or model_config(cfg.model_name_or_path, getattr(cfg, "trust_remote_code", False))
    device = device or device_type()
    model = meta_model(cfg, config)
    summary = count_parameters(model)
    width = dtype_bytes(cfg, device, config)
    mixed = mixed_on_cpu(cfg, device, width)
    # trainable parameters of adapters are kept in fp32 by peft; full/freeze use the model's
    # width, fp32 master weights under CPU mixed precision
    train_width = 4 if cfg.finetuning_type in ("lora", "ia3", "prompt_tuning", "prefix_tuning") or mixed else width
    total_dev, free_dev = device_memory(device)
    worst_tokens = largest_batch_tokens(cfg, None)
    batch_tokens = largest_batch_tokens(cfg, lengths)
    quantizable = quantizable_parameters(model)
    weights = weight_bytes(summary.total, quantizable, cfg, 4 if mixed else width)
    if mixed and cfg.quantization_bit is None:
        # bf16 copies of the blocks' linear weights (kept by the fused LoRA, made per step by
        # autocast for trained weights)
        weights += 2 * quantizable
    if cfg.stage in ("dpo", "kto") and cfg.use_ref_model and cfg.finetuning_type not in PEFT_METHODS:
        weights *= 2  # a frozen copy of the model as the reference (adapters just switch off)
    return MemoryEstimate(
        trainable=summary.trainable,
        total=summary.total,
        weights=weights,
        gradients=summary.trainable * train_width,
        optimizer=optimizer_bytes(cfg, summary.trainable, train_width),
        activations=activation_bytes(cfg, config, width, summary.trainable, device, batch_tokens),
        overhead=CUDA_OVERHEAD if device == "cuda" else CPU_OVERHEAD,
        device=device,
        device_total=total_dev,
        device_free=free_dev,
        worst_activations=activation_bytes(cfg, config, width, summary.trainable, device, worst_tokens),
        batch_tokens=batch_tokens,
        worst_batch_tokens=worst_tokens,
        from_data=bool(lengths),
    )


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"


def data_lengths(cfg) -> list[int]:
    """The tokenized lengths of the run's training examples (the tokenized-data cache makes a
    second call cheap); what the memory and time estimates take from the data."""
    from .data import load_splits
    from .data.cache import tokenize_rows_cached
    from .models import load_tokenizer

    tokenizer = load_tokenizer(cfg.model_name_or_path)
    _, stats, _ = tokenize_rows_cached(tokenizer, load_splits(cfg).train, cfg)
    return list(stats.lengths)
