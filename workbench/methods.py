"""Method name → what is trainable. Knows models and peft, nothing about trainers or the UI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

METHODS = {
    "lora": (
        "Low-rank adapters on linear layers (rsLoRA, DoRA, PiSSA, LoRA+ as options; QLoRA with quantization_bit 4/8)",
        "线性层上的低秩适配器（可选 rsLoRA、DoRA、PiSSA、LoRA+；配合 quantization_bit 4/8 即 QLoRA）",
    ),
    "full": ("Every weight is trained", "训练全部权重"),
    "freeze": (
        "Only the last N transformer layers (optionally only some modules) are trained",
        "只训练最后 N 个 Transformer 层（可只选其中部分模块）",
    ),
    "bitfit": (
        "Only bias terms are trained (the model must have biases; llama-style ones have none)",
        "只训练偏置项（模型须带偏置；llama 类模型没有）",
    ),
    "ia3": ("IA3: learned scaling vectors on attention and MLP activations", "IA3：在注意力与 MLP 激活上学习缩放向量"),
    "prompt_tuning": ("A learned soft prompt of num_virtual_tokens embeddings", "学习 num_virtual_tokens 个软提示嵌入"),
    "prefix_tuning": ("Learned key/value prefixes in every layer", "在每层学习键/值前缀"),
    "head": ("A sequence-classification head only (stage cls)", "只训练序列分类头（cls 阶段）"),
}
STAGES = {
    "sft": (
        "Supervised fine-tuning on conversations; loss on assistant replies",
        "对话监督微调；只在助手回复上计算损失",
    ),
    "pt": ("Continued pretraining on raw text, packed", "在原始文本上继续预训练（打包）"),
    "dpo": (
        "Direct preference optimisation on chosen/rejected pairs (loss types via pref_loss)",
        "在好/坏回答对上做直接偏好优化（损失类型由 pref_loss 选择）",
    ),
    "kto": ("KTO on single answers labelled good or bad", "在标注好/坏的单个回答上做 KTO"),
    "rm": ("Reward model: a scalar head trained on preference pairs", "奖励模型：在偏好对上训练标量头"),
    "cls": ("Sequence classification on text + label rows", "在文本+标签数据上做序列分类"),
    "grpo": (
        "GRPO: sample several answers per prompt, reward them (rules and/or an rm run), reinforce the better ones",
        "GRPO：每个提示采样多个回答，用规则和/或 rm 运行打分，强化更好的回答",
    ),
    "rloo": ("RLOO: as grpo, with the leave-one-out baseline", "RLOO：同 grpo，使用留一法基线"),
}
PEFT_METHODS = ("lora", "ia3", "prompt_tuning", "prefix_tuning")
MERGEABLE_METHODS = ("lora", "ia3")


class MethodError(ValueError):
    pass


@dataclass
class TrainableSummary:
    trainable: int
    total: int

    @property
    def share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.trainable:,} of {self.total:,} parameters trainable ({100 * self.share:.3f}%)"


def count_parameters(model) -> TrainableSummary:
    trainable = total = 0
    for param in model.parameters():
        n = param.numel()
        if hasattr(param, "quant_storage") or param.__class__.__name__ == "Params4bit":
            n *= 2  # 4-bit weights pack two values per byte
        total += n
        if param.requires_grad:
            trainable += n
    return TrainableSummary(trainable, total)


def decoder_layers(model):
    """The list of transformer blocks of a causal LM (llama-, mistral-, qwen-, gpt2-style)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for path in ("model.layers", "transformer.h", "model.decoder.layers", "gpt_neox.layers"):
        obj = base
        try:
            for attr in path.split("."):
                obj = getattr(obj, attr)
            return obj
        except AttributeError:
            continue
    raise MethodError(f"cannot find the transformer layers of {type(base).__name__}")


def lora_config(cfg, task_type: str = "CAUSAL_LM"):
    from peft import LoraConfig

    targets = cfg.lora_target.strip()
    target_modules = "all-linear" if targets in ("all", "") else [t.strip() for t in targets.split(",") if t.strip()]
    return LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha or 2 * cfg.lora_rank,
        lora_dropout=cfg.lora_dropout,
        target_modules=target_modules,
        use_rslora=cfg.use_rslora,
        use_dora=cfg.use_dora,
        init_lora_weights=_lora_init(cfg),
        task_type=task_type,
        bias="none",
    )


def _lora_init(cfg):
    if not cfg.pissa_init:
        return True
    iterations = getattr(cfg, "pissa_iter", -1)
    # fast SVD with a few iterations (LLaMA-Factory's pissa_iter); -1 is the exact SVD
    return f"pissa_niter_{iterations}" if iterations and iterations > 0 else "pissa"


def task_type_of(cfg) -> str:
    """peft's task type: a reward or classification model trains its new head along with the
    adapters (peft keeps it in modules_to_save)."""
    return "SEQ_CLS" if cfg.stage in ("rm", "cls") else "CAUSAL_LM"


def peft_config(cfg, task_type: str | None = None):
    import peft

    task_type = task_type or task_type_of(cfg)

    if cfg.finetuning_type == "lora":
        return lora_config(cfg, task_type)
    if cfg.finetuning_type == "ia3":
        return peft.IA3Config(task_type=task_type)
    if cfg.finetuning_type == "prompt_tuning":
        return peft.PromptTuningConfig(task_type=task_type, num_virtual_tokens=cfg.num_virtual_tokens)
    if cfg.finetuning_type == "prefix_tuning":
        return peft.PrefixTuningConfig(task_type=task_type, num_virtual_tokens=cfg.num_virtual_tokens)
    return None


def apply_method(model, cfg):
    """Make exactly the parameters the method trains require gradients; return the model
    (a PeftModel for adapter methods)."""
    kind = cfg.finetuning_type
    if getattr(cfg, "dropout", None) is not None:
        set_dropout(model, cfg.dropout)
    if kind in PEFT_METHODS:
        import peft

        if cfg.quantization_bit is not None:
            model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.activation_checkpointing)
        if getattr(cfg, "adapter_name_or_path", None):
            return continue_adapter(model, cfg)
        try:
            return peft.get_peft_model(model, peft_config(cfg, task_type_of(cfg)))
        except ValueError as err:
            raise MethodError(f"{kind}: {err}") from None
    if kind == "full":
        for param in model.parameters():
            param.requires_grad_(True)
        return model
    if kind == "head":
        return _train_head_only(model)
    if kind == "freeze":
        return _freeze_all_but_last_layers(model, cfg.freeze_trainable_layers, cfg.freeze_trainable_modules)
    if kind == "bitfit":
        found = False
        for name, param in model.named_parameters():
            is_bias = name.endswith(".bias")
            param.requires_grad_(is_bias)
            found |= is_bias
        if not found:
            raise MethodError(
                f"bitfit: {type(model).__name__} has no bias parameters to train "
                f"(llama-style models have none); pick another finetuning_type"
            )
        return model
    raise MethodError(f"finetuning_type '{kind}' is not supported for this stage")


# ---- starting from an existing adapter -------------------------------------------------------
ADAPTER_CONFIG = "adapter_config.json"
PEFT_TYPE_OF_METHOD = {"lora": "LORA", "ia3": "IA3", "prompt_tuning": "PROMPT_TUNING", "prefix_tuning": "PREFIX_TUNING"}


def adapter_folder(spec: str) -> Path:
    """The folder holding adapter_config.json for a run folder (its final result), a checkpoint,
    or any plain PEFT adapter folder."""
    path = Path(spec).expanduser()
    for candidate in (path, path / "final"):
        if (candidate / ADAPTER_CONFIG).is_file():
            return candidate
    if not path.exists():
        raise MethodError(f"adapter_name_or_path: {path} does not exist")
    raise MethodError(
        f"adapter_name_or_path: {path} holds no {ADAPTER_CONFIG} (neither a PEFT "
        f"adapter folder nor a finished adapter run)"
    )


def read_adapter_config(spec: str) -> dict:
    import json

    folder = adapter_folder(spec)
    try:
        return json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise MethodError(f"adapter_name_or_path: {folder / ADAPTER_CONFIG} is not readable: {err}") from None


def check_adapter(cfg) -> dict:
    """The adapter's config, after checking it is the config's method (same family)."""
    config = read_adapter_config(cfg.adapter_name_or_path)
    wanted = PEFT_TYPE_OF_METHOD.get(cfg.finetuning_type)
    if config.get("peft_type") != wanted:
        raise MethodError(
            f"adapter_name_or_path: {cfg.adapter_name_or_path} is a "
            f"{config.get('peft_type')} adapter; finetuning_type '{cfg.finetuning_type}' "
            f"continues only {wanted} adapters"
        )
    return config


def continue_adapter(model, cfg):
    """Load the adapter trainable, as the model's only adapter. A causal-LM adapter continued by
    stage rm becomes a sequence-classification one (its new head trains with it)."""
    from peft import PeftConfig, PeftModel

    check_adapter(cfg)
    folder = adapter_folder(cfg.adapter_name_or_path)
    config = PeftConfig.from_pretrained(str(folder))
    saved_task = config.task_type
    config.task_type = task_type_of(cfg)
    config.inference_mode = False
    try:
        if saved_task != config.task_type:  # e.g. SFT adapter → reward model: a new head
            return _adapter_for_new_task(model, config, folder)
        return PeftModel.from_pretrained(model, str(folder), config=config, is_trainable=True)
    except (ValueError, RuntimeError, KeyError) as err:
        raise MethodError(
            f"adapter_name_or_path: {folder} does not fit this model: {str(err).splitlines()[0]}"
        ) from None


def _adapter_for_new_task(model, config, folder: Path):
    """The adapter's weights in a fresh peft model of another task type (its new head, which
    the saved adapter lacks, starts as the model made it)."""
    import peft
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

    weights_file = folder / "adapter_model.safetensors"
    if weights_file.is_file():
        from safetensors.torch import load_file

        weights = load_file(str(weights_file))
    else:
        import torch

        weights = torch.load(str(folder / "adapter_model.bin"), map_location="cpu", weights_only=True)
    peft_model = peft.get_peft_model(model, config)
    # the new head is not in the saved adapter: it keeps the weights it was just given
    for key, value in get_peft_model_state_dict(peft_model).items():
        weights.setdefault(key, value)
    set_peft_model_state_dict(peft_model, weights)
    return peft_model


def _freeze_all_but_last_layers(model, n_layers: int, modules: str):
    layers = decoder_layers(model)
    if abs(n_layers) > len(layers):
        raise MethodError(f"freeze_trainable_layers is {n_layers} but the model has {len(layers)} layers")
    wanted = None if modules.strip() in ("", "all") else [m.strip() for m in modules.split(",") if m.strip()]
    for param in model.parameters():
        param.requires_grad_(False)
    matched = 0
    # N trains the last N layers; -N the first N (LLaMA-Factory's convention)
    chosen = list(layers)[-n_layers:] if n_layers > 0 else list(layers)[:-n_layers]
    for layer in chosen:
        for name, param in layer.named_parameters():
            if wanted is None or any(name == m or name.startswith(m + ".") for m in wanted):
                param.requires_grad_(True)
                matched += 1
    if matched == 0:
        raise MethodError(f"freeze_trainable_modules '{modules}' matches nothing in the {len(chosen)} trainable layers")
    return model


def _head_modules(model):
    """The classification head of an AutoModelForSequenceClassification (score / classifier)."""
    from peft.utils.constants import SEQ_CLS_HEAD_NAMES

    heads = [getattr(model, n) for n in SEQ_CLS_HEAD_NAMES if hasattr(model, n)]
    if not heads:
        raise MethodError(
            f"finetuning_type 'head': {type(model).__name__} has no classification "
            f"head ({' or '.join(SEQ_CLS_HEAD_NAMES)})"
        )
    return heads


def _train_head_only(model):
    for param in model.parameters():
        param.requires_grad_(False)
    for head in _head_modules(model):
        for param in head.parameters():
            param.requires_grad_(True)
    return model


# ---- per-parameter learning rates (layer-wise decay, LoRA+) --------------------------------
def uses_param_groups(cfg) -> bool:
    return cfg.layerwise_lr_decay != 1.0 or (cfg.finetuning_type == "lora" and bool(cfg.loraplus_lr_ratio))


def lr_scale_of_parameters(model, cfg) -> dict[str, float]:
    """name → factor on the base learning rate, for every trainable parameter.

    Layer-wise decay: the top transformer layer learns at 1, each layer below at `decay` times
    the one above, the input embeddings below the bottom layer; the head and final norm at 1.
    LoRA+: the B matrices learn `loraplus_lr_ratio` times faster than the A matrices."""
    decay = cfg.layerwise_lr_decay
    depth: dict[int, int] = {}  # id(param) → layers below the top
    if decay != 1.0:
        layers = list(decoder_layers(model))
        for index, layer in enumerate(layers):
            for param in layer.parameters():
                depth[id(param)] = len(layers) - 1 - index
        for param in model.get_input_embeddings().parameters():
            depth.setdefault(id(param), len(layers))
    ratio = cfg.loraplus_lr_ratio if cfg.finetuning_type == "lora" and cfg.loraplus_lr_ratio else 1.0
    scales = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        scale = decay ** depth.get(id(param), 0)
        if ".lora_B." in name or ".lora_embedding_B." in name:
            scale *= ratio
        scales[name] = scale
    return scales


def param_groups(model, cfg, decay_names: set[str]) -> list[dict]:
    """Optimizer parameter groups: one per (learning-rate factor, weight decay on/off)."""
    groups: dict[tuple[float, bool], dict] = {}
    params = dict(model.named_parameters())
    for name, scale in lr_scale_of_parameters(model, cfg).items():
        decays = name in decay_names
        group = groups.setdefault(
            (scale, decays),
            {"params": [], "lr": cfg.learning_rate * scale, "weight_decay": cfg.weight_decay if decays else 0.0},
        )
        group["params"].append(params[name])
    return [groups[key] for key in sorted(groups, key=lambda k: (k[0], k[1]))]


def configure_optimizer(trainer, cfg) -> None:
    """Hand the Trainer per-parameter learning rates when the config asks for them.

    The optimizer class and its other settings still come from `optim` (the Trainer's own
    choice); only the parameter groups are ours. The scheduler scales each group's rate."""
    if not uses_param_groups(cfg):
        return
    model = trainer.model
    optimizer_cls, kwargs = trainer.get_optimizer_cls_and_kwargs(trainer.args, model)
    groups = param_groups(model, cfg, set(trainer.get_decay_parameter_names(model)))
    trainer.optimizer_cls_and_kwargs = (optimizer_cls, {**kwargs, "params": groups})


# ---- PiSSA: save an adapter that applies to the original base ------------------------------
PISSA_INIT_DIR = "pissa_init"


def before_training(model, cfg, run_dir) -> None:
    """PiSSA rewrites the base weights (residual = W - principal part); keep the initial
    adapter so that the result can be converted to a plain LoRA on the untouched base."""
    if cfg.finetuning_type == "lora" and cfg.pissa_init:
        model.save_pretrained(str(Path(run_dir) / PISSA_INIT_DIR))


def after_save(model, cfg, folder, run_dir) -> None:
    """Rewrite a saved PiSSA adapter as a (rank 2r) LoRA of the original base, which plain
    peft loads onto the unmodified model."""
    if cfg.finetuning_type == "lora" and cfg.pissa_init:
        model.save_pretrained(str(folder), path_initial_model_for_weight_conversion=str(Path(run_dir) / PISSA_INIT_DIR))


# ---- dropout -------------------------------------------------------------------------------
DROPOUT_CONFIG_KEYS = (
    "attention_dropout",
    "hidden_dropout",
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "classifier_dropout",
    "dropout",
)


def set_dropout(model, p: float) -> int:
    """Set every dropout of the model to p: nn.Dropout modules and the float rates attention
    layers read at run time (llama-style models have only those). Returns how many were set."""
    import torch

    changed = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
            changed += 1
        elif isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = p
            changed += 1
    for key in DROPOUT_CONFIG_KEYS:  # saved with the model, read by code paths built later
        if isinstance(getattr(model.config, key, None), float):
            setattr(model.config, key, p)
    return changed
