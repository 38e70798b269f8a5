"""RunConfig: every knob of a run, declared once.

Each field carries its default, its allowed values or range, its group and a label and help
text in English and Chinese. The UI form, the YAML file, the CLI `--set` overrides and the
validation are all derived from these declarations; a key that is not a field is refused.

Names follow Hugging Face TrainingArguments where one exists, LLaMA-Factory otherwise.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tempfile
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_MODEL = "SmolLM2-135M-Instruct"

GROUPS = ("model", "data", "method", "lora", "preference", "train", "schedule", "system")


class ConfigError(ValueError):
    """A config that cannot run. The message names every offending key and why."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        super().__init__(f"invalid config{where}:\n" + "\n".join(f"  - {p}" for p in self.problems))


def knob(default: Any, *, group: str, label: tuple[str, str], help: tuple[str, str],
         choices: list | None = None, min: float | None = None, max: float | None = None,
         min_exclusive: bool = False) -> Any:
    """Declare one field: default, allowed values, group, and (en, zh) label and help."""
    assert group in GROUPS, group
    meta = {"group": group, "label": {"en": label[0], "zh": label[1]},
            "help": {"en": help[0], "zh": help[1]}, "choices": choices, "min": min, "max": max,
            "min_exclusive": min_exclusive}
    return field(default=default, metadata=meta)


# DPO loss types of trl's DPOTrainer that Workbench offers (names as trl spells them)
DPO_LOSSES = ("sigmoid", "ipo", "hinge", "robust", "exo_pair", "nca_pair", "bco_pair",
              "sppo_hard", "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm")
REFERENCE_FREE_LOSSES = ("orpo", "simpo")
# stage kto: the two losses trl's KTOTrainer has, keyed by the pref_loss that selects them
KTO_LOSSES = {"sigmoid": "kto", "apo_zero": "apo_zero_unpaired"}


@dataclass
class RunConfig:
    # ---- model -------------------------------------------------------------------------
    model_name_or_path: str = knob(
        DEFAULT_MODEL, group="model",
        label=("Model", "模型"),
        help=("A known model name, a Hugging Face hub id, or a local folder. The default is "
              "embedded and works offline.",
              "已知模型名、Hugging Face Hub 上的模型 ID 或本地文件夹。默认模型已内置，可离线使用。"))
    template: str = knob(
        "auto", group="model", choices=["auto", "chatml", "plain"],
        label=("Chat template", "对话模板"),
        help=("How conversations become text. 'auto' uses the tokenizer's own template "
              "(plain fallback if it has none).",
              "对话如何转成文本。auto 使用分词器自带模板（没有则退回 plain）。"))
    quantization_bit: int | None = knob(
        None, group="model", choices=[None, 4, 8],
        label=("Quantization bits", "量化位数"),
        help=("Load the base weights in 4 or 8 bit with bitsandbytes (QLoRA when combined "
              "with LoRA). Empty = no quantization.",
              "用 bitsandbytes 以 4 位或 8 位加载基座权重（与 LoRA 组合即 QLoRA）。留空表示不量化。"))
    quantization_type: str = knob(
        "nf4", group="model", choices=["nf4", "fp4"],
        label=("4-bit data type", "4 位数据类型"),
        help=("Data type of 4-bit weights: nf4 (NormalFloat, best for normally distributed "
              "weights) or fp4.", "4 位权重的数据类型：nf4（NormalFloat，适合正态分布权重）或 fp4。"))
    double_quantization: bool = knob(
        True, group="model",
        label=("Double quantization", "双重量化"),
        help=("Also quantize the 4-bit quantization constants (saves ~0.4 bit per weight).",
              "对 4 位量化常数再量化一次（每个权重约省 0.4 位）。"))
    compute_type: str = knob(
        "auto", group="model", choices=["auto", "fp32", "bf16", "fp16"],
        label=("Compute type", "计算精度"),
        help=("Numeric type for training. 'auto' picks bf16 on GPUs that support it, else "
              "fp16 on GPUs; on a CPU it measures once whether bf16 matrix products beat fp32 "
              "clearly at the model's shapes (CPUs with AMX/AVX512-BF16) and picks bf16 then, "
              "fp32 otherwise (bf16 is ~100x slower on CPUs without it). bf16 on a CPU is mixed "
              "precision: fp32 weights and optimizer, bf16 products.",
              "训练使用的数值类型。auto：支持 bf16 的 GPU 用 bf16，其他 GPU 用 fp16；在 CPU 上先实测一次"
              "该模型形状下 bf16 矩阵乘法是否明显快于 fp32（带 AMX/AVX512-BF16 的 CPU），是则用 bf16，"
              "否则用 fp32（没有原生 bf16 的 CPU 上 bf16 约慢 100 倍）。CPU 上的 bf16 为混合精度："
              "权重与优化器为 fp32，矩阵乘法为 bf16。"))

    # ---- data --------------------------------------------------------------------------
    dataset: str = knob(
        "identity", group="data",
        label=("Dataset", "数据集"),
        help=("Name(s) from the dataset registry (dataset_info.json in dataset_dir), "
              "comma-separated to mix several.",
              "数据集注册表（dataset_dir 中的 dataset_info.json）里的名称，多个用逗号分隔。"))
    dataset_dir: str = knob(
        "data", group="data",
        label=("Dataset folder", "数据集目录"),
        help=("Your folder holding dataset_info.json and the files it names (relative to the working "
              "folder), read beside the shipped datasets; your entry wins a shared name.",
              "你自己的数据目录，存放 dataset_info.json 及其所列文件（相对于当前工作目录），与内置数据集一并读取；"
              "同名时以你的条目为准。"))
    cutoff_len: int = knob(
        1024, group="data", min=8, max=131072,
        label=("Cutoff length", "截断长度"),
        help=("Longest tokenized example; longer ones are truncated.",
              "分词后样本的最大长度，超出部分截断。"))
    max_samples: int | None = knob(
        None, group="data", min=1,
        label=("Max samples", "最大样本数"),
        help=("Use at most this many rows of each dataset (empty = all).",
              "每个数据集最多使用的行数（留空表示全部）。"))
    val_size: float = knob(
        0.0, group="data", min=0.0,
        label=("Validation size", "验证集大小"),
        help=("Rows held out for validation: a fraction below 1 or a row count.",
              "留作验证集的行：小于 1 表示比例，否则表示行数。"))
    test_size: float = knob(
        0.0, group="data", min=0.0,
        label=("Test size", "测试集大小"),
        help=("Rows held out for evaluation and never trained on: a fraction below 1 or a row "
              "count. A dataset with its own test file uses that file instead.",
              "留作测试、从不参与训练的行：小于 1 表示比例，否则表示行数。自带测试文件的数据集使用该文件。"))
    train_on_prompt: bool = knob(
        False, group="data",
        label=("Train on prompt too", "同时训练提示部分"),
        help=("Compute the loss on the whole conversation, not only the assistant replies.",
              "在整段对话上计算损失，而不只是助手回复。"))
    packing: bool | None = knob(
        None, group="data", choices=[None, True, False],
        label=("Packing", "序列打包"),
        help=("Pack several short examples into one sequence. Empty = on for continued "
              "pretraining, off otherwise.",
              "把多个短样本拼成一条序列。留空表示继续预训练时开启，其它阶段关闭。"))
    identity_name: str = knob(
        "Workbench Assistant", group="data",
        label=("Assistant name", "助手名称"),
        help=("Replaces {{name}} in datasets such as identity.", "替换数据集（如 identity）中的 {{name}}。"))
    identity_author: str = knob(
        "the Workbench team", group="data",
        label=("Assistant author", "助手作者"),
        help=("Replaces {{author}} in datasets such as identity.",
              "替换数据集（如 identity）中的 {{author}}。"))

    # ---- method ------------------------------------------------------------------------
    stage: str = knob(
        "sft", group="method", choices=["sft", "pt", "dpo", "kto", "rm", "cls"],
        label=("Stage", "训练阶段"),
        help=("What the loss is: sft (supervised on conversations), pt (continued pretraining "
              "on raw text), dpo (preference pairs), kto (liked/disliked answers), rm (reward "
              "model), cls (sequence classification).",
              "损失是什么：sft（对话监督微调）、pt（原始文本继续预训练）、dpo（偏好对）、"
              "kto（好/坏回答标注）、rm（奖励模型）、cls（序列分类）。"))
    finetuning_type: str = knob(
        "lora", group="method",
        choices=["lora", "full", "freeze", "bitfit", "ia3", "prompt_tuning", "prefix_tuning", "head"],
        label=("Method", "微调方法"),
        help=("What is trainable: lora (low-rank adapters; QLoRA with quantization_bit), full, "
              "freeze (last N layers), bitfit (biases only), ia3, prompt_tuning, prefix_tuning, "
              "head (a classification head only).",
              "哪些参数可训练：lora（低秩适配器；配合量化即 QLoRA）、full（全参数）、freeze（仅最后 N 层）、"
              "bitfit（仅偏置）、ia3、prompt_tuning（软提示）、prefix_tuning（前缀）、head（仅分类头）。"))
    freeze_trainable_layers: int = knob(
        2, group="method", min=1,
        label=("Trainable layers", "可训练层数"),
        help=("Freeze tuning: train only the last N transformer layers.",
              "冻结微调：只训练最后 N 个 Transformer 层。"))
    freeze_trainable_modules: str = knob(
        "all", group="method",
        label=("Trainable modules", "可训练模块"),
        help=("Freeze tuning: module names inside those layers to train (comma-separated, e.g. "
              "mlp,self_attn), or 'all'.",
              "冻结微调：这些层中要训练的模块名（逗号分隔，如 mlp,self_attn），或 all。"))
    layerwise_lr_decay: float = knob(
        1.0, group="method", min=0.0, max=1.0, min_exclusive=True,
        label=("Layer-wise LR decay", "逐层学习率衰减"),
        help=("Each layer below the top learns at this factor times the layer above it "
              "(1.0 = same rate everywhere).",
              "每往下一层，学习率乘以该系数（1.0 表示各层相同）。"))
    num_virtual_tokens: int = knob(
        20, group="method", min=1, max=1024,
        label=("Virtual tokens", "虚拟 token 数"),
        help=("Prompt and prefix tuning: length of the learned soft prompt.",
              "提示微调与前缀微调：学习的软提示长度。"))

    # ---- lora --------------------------------------------------------------------------
    lora_rank: int = knob(
        8, group="lora", min=1, max=1024,
        label=("LoRA rank", "LoRA 秩"),
        help=("Rank of the low-rank update matrices.", "低秩更新矩阵的秩。"))
    lora_alpha: int | None = knob(
        None, group="lora", min=1,
        label=("LoRA alpha", "LoRA alpha"),
        help=("Scale of the LoRA update (alpha/rank). Empty = twice the rank.",
              "LoRA 更新的缩放（alpha/秩）。留空表示秩的两倍。"))
    lora_dropout: float = knob(
        0.0, group="lora", min=0.0, max=0.9,
        label=("LoRA dropout", "LoRA dropout"),
        help=("Dropout on the LoRA branch.", "LoRA 分支上的 dropout。"))
    lora_target: str = knob(
        "all", group="lora",
        label=("LoRA target modules", "LoRA 目标模块"),
        help=("Linear modules that get adapters, comma-separated (e.g. q_proj,v_proj), or "
              "'all' for every linear layer except the output head.",
              "加适配器的线性层，逗号分隔（如 q_proj,v_proj），或 all 表示除输出头外的所有线性层。"))
    use_rslora: bool = knob(
        False, group="lora",
        label=("rsLoRA", "rsLoRA"),
        help=("Rank-stabilised scaling alpha/sqrt(rank).", "秩稳定缩放 alpha/sqrt(秩)。"))
    use_dora: bool = knob(
        False, group="lora",
        label=("DoRA", "DoRA"),
        help=("Weight-decomposed LoRA (learns magnitude and direction).",
              "权重分解 LoRA（分别学习幅度和方向）。"))
    pissa_init: bool = knob(
        False, group="lora",
        label=("PiSSA initialisation", "PiSSA 初始化"),
        help=("Initialise adapters from the principal singular vectors of the weights.",
              "用权重的主奇异向量初始化适配器。"))
    loraplus_lr_ratio: float | None = knob(
        None, group="lora", min=1.0,
        label=("LoRA+ LR ratio", "LoRA+ 学习率比"),
        help=("LoRA+: the B matrices learn this many times faster than A (e.g. 16). Empty = off.",
              "LoRA+：B 矩阵的学习率是 A 的多少倍（如 16）。留空表示关闭。"))

    # ---- preference --------------------------------------------------------------------
    pref_loss: str = knob(
        "sigmoid", group="preference",
        choices=[*DPO_LOSSES, *REFERENCE_FREE_LOSSES],
        label=("Preference loss", "偏好损失"),
        help=("Loss of stage dpo: sigmoid (DPO), ipo, hinge, robust, exo_pair, nca_pair, bco_pair, "
              "sppo_hard, aot, aot_unpaired, apo_zero, apo_down, discopop, sigmoid_norm (trl's DPO "
              "losses), or the reference-free orpo and simpo. Stage kto: sigmoid (KTO) or apo_zero.",
              "dpo 阶段的损失：sigmoid（DPO）、ipo、hinge、robust、exo_pair、nca_pair、bco_pair、sppo_hard、"
              "aot、aot_unpaired、apo_zero、apo_down、discopop、sigmoid_norm（trl 的 DPO 损失），"
              "或无需参考模型的 orpo 与 simpo。kto 阶段：sigmoid（KTO）或 apo_zero。"))
    pref_beta: float = knob(
        0.1, group="preference", min=0.0, min_exclusive=True,
        label=("Preference beta", "偏好 beta"),
        help=("How far the policy may move from the reference model (ORPO: weight of the "
              "odds-ratio term).",
              "策略模型偏离参考模型的程度（ORPO：几率比项的权重）。"))
    use_ref_model: bool = knob(
        True, group="preference",
        label=("Use reference model", "使用参考模型"),
        help=("Keep a frozen reference (the base; for LoRA the adapter switched off) during "
              "training. Off = its log-probabilities are computed once before training and no "
              "reference is kept. orpo and simpo never use a reference.",
              "训练时保留冻结的参考模型（基座；LoRA 时即关闭适配器）。关闭：训练前一次性算出参考模型的"
              "对数概率，训练中不保留参考模型。orpo 与 simpo 从不使用参考模型。"))
    pref_label_smoothing: float = knob(
        0.0, group="preference", min=0.0, max=0.5,
        label=("Preference label smoothing", "偏好标签平滑"),
        help=("Losses robust and exo_pair: assumed share of preference labels that are wrong "
              "(robust: below 0.5, e.g. 0.1; exo_pair needs more than 0, e.g. 0.001).",
              "robust 与 exo_pair 损失：假定标注错误的偏好所占比例（robust：小于 0.5，如 0.1；"
              "exo_pair 须大于 0，如 0.001）。"))

    # ---- train (TrainingArguments names) -----------------------------------------------
    output_dir: str = knob(
        "", group="train",
        label=("Output folder", "输出目录"),
        help=("Where the run is saved. Empty = a new folder under saves/.",
              "训练结果保存位置。留空表示在 saves/ 下新建目录。"))
    learning_rate: float = knob(
        1e-3, group="train", min=0.0, max=1.0, min_exclusive=True,
        label=("Learning rate", "学习率"),
        help=("Peak learning rate of the optimizer. LoRA on small models: 1e-4 to 1e-3; full "
              "fine-tuning: 1e-5 to 5e-5.",
              "优化器的峰值学习率。小模型上的 LoRA：1e-4 到 1e-3；全参数微调：1e-5 到 5e-5。"))
    num_train_epochs: float = knob(
        3.0, group="train", min=0.0, max=10000.0, min_exclusive=True,
        label=("Epochs", "训练轮数"),
        help=("Passes over the training set (ignored when max_steps > 0).",
              "遍历训练集的次数（max_steps > 0 时忽略）。"))
    max_steps: int = knob(
        -1, group="train", min=-1, max=100_000_000,
        label=("Max steps", "最大步数"),
        help=("Stop after this many optimizer steps (-1 = use epochs).",
              "训练这么多个优化步后停止（-1 表示按轮数）。"))
    per_device_train_batch_size: int = knob(
        4, group="train", min=1, max=4096,
        label=("Batch size", "批大小"),
        help=("Examples per device per forward pass.", "每个设备每次前向的样本数。"))
    per_device_eval_batch_size: int = knob(
        4, group="train", min=1, max=4096,
        label=("Eval batch size", "验证批大小"),
        help=("Examples per device per evaluation pass.", "每个设备每次验证的样本数。"))
    gradient_accumulation_steps: int = knob(
        1, group="train", min=1, max=4096,
        label=("Gradient accumulation", "梯度累积"),
        help=("Forward passes summed into one optimizer step.", "累加成一个优化步的前向次数。"))
    optim: str = knob(
        "adamw_torch", group="train",
        choices=["adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "adamw_bnb_8bit", "paged_adamw_8bit"],
        label=("Optimizer", "优化器"),
        help=("Optimizer (Hugging Face names).", "优化器（Hugging Face 名称）。"))
    weight_decay: float = knob(
        0.0, group="train", min=0.0, max=1.0,
        label=("Weight decay", "权重衰减"),
        help=("Decoupled L2 weight decay.", "解耦的 L2 权重衰减。"))
    max_grad_norm: float = knob(
        1.0, group="train", min=0.0, max=1e6,
        label=("Max gradient norm", "最大梯度范数"),
        help=("Clip gradients to this norm (0 = no clipping).", "将梯度裁剪到该范数（0 表示不裁剪）。"))
    neftune_noise_alpha: float | None = knob(
        None, group="train", min=0.0, max=100.0,
        label=("NEFTune noise", "NEFTune 噪声"),
        help=("Add uniform noise of this scale to embeddings during training (e.g. 5). Empty = off.",
              "训练时向词嵌入加入该尺度的均匀噪声（如 5）。留空表示关闭。"))
    activation_checkpointing: bool = knob(
        False, group="train",
        label=("Activation checkpointing", "激活检查点"),
        help=("Recompute activations in the backward pass: less memory, ~30% more compute.",
              "反向传播时重算激活：省显存，约多 30% 计算。"))
    torch_compile: bool = knob(
        False, group="train",
        label=("torch.compile", "torch.compile"),
        help=("Compile the model with torch.compile (slow first step, may be faster after).",
              "用 torch.compile 编译模型（首步慢，之后可能更快）。"))
    seed: int = knob(
        42, group="train", min=0, max=2**32 - 1,
        label=("Seed", "随机种子"),
        help=("Seed for initialisation, shuffling and data splits.", "初始化、打乱与数据划分的随机种子。"))
    resume_from_checkpoint: str | None = knob(
        None, group="train",
        label=("Resume from checkpoint", "从检查点恢复"),
        help=("A checkpoint folder to continue from, or 'last' for the newest complete one.",
              "要继续训练的检查点目录，或 last 表示最新的完整检查点。"))
    # ---- methods helper: model dropout --------------------------------------------------
    dropout: float | None = knob(
        None, group="train", min=0.0, max=0.9,
        label=("Dropout", "Dropout"),
        help=("Dropout probability inside the model (attention and hidden layers) while "
              "training. Empty = the model's own setting.",
              "训练时模型内部（注意力与隐藏层）的 dropout 概率。留空表示沿用模型自身设置。"))

    # ---- schedule ----------------------------------------------------------------------
    lr_scheduler_type: str = knob(
        "cosine", group="schedule",
        choices=["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts",
                 "polynomial", "inverse_sqrt"],
        label=("LR scheduler", "学习率调度"),
        help=("How the learning rate changes over training.", "学习率在训练过程中的变化方式。"))
    warmup_steps: float = knob(
        0.0, group="schedule", min=0.0, max=100_000_000,
        label=("Warmup", "预热"),
        help=("Linear warmup: a step count, or a fraction below 1 of all steps.",
              "线性预热：步数，或小于 1 的总步数比例。"))
    logging_steps: int = knob(
        5, group="schedule", min=1, max=100_000_000,
        label=("Log every N steps", "每 N 步记录"),
        help=("Record loss and learning rate every N steps.", "每 N 步记录一次损失和学习率。"))
    save_steps: int = knob(
        100, group="schedule", min=1, max=100_000_000,
        label=("Save every N steps", "每 N 步保存"),
        help=("Write a checkpoint every N steps.", "每 N 步保存一个检查点。"))
    save_total_limit: int | None = knob(
        3, group="schedule", min=1, max=100_000,
        label=("Checkpoints to keep", "保留检查点数"),
        help=("Keep at most this many checkpoints (empty = all).", "最多保留的检查点数（留空表示全部）。"))
    eval_steps: int | None = knob(
        None, group="schedule", min=1, max=100_000_000,
        label=("Validate every N steps", "每 N 步验证"),
        help=("Run validation every N steps when there is a validation split (empty = at the "
              "same rate as saving).",
              "存在验证集时每 N 步验证一次（留空表示与保存频率相同）。"))
    early_stopping_patience: int | None = knob(
        None, group="schedule", min=1, max=100_000,
        label=("Early stopping patience", "早停耐心"),
        help=("Stop when the best-model metric has not improved for this many validations in a "
              "row (needs a validation split; empty = never stop early).",
              "最佳模型指标连续这么多次验证没有改善时停止训练（需要验证集；留空表示不早停）。"))
    early_stopping_threshold: float = knob(
        0.0, group="schedule", min=0.0,
        label=("Early stopping threshold", "早停阈值"),
        help=("How much the metric must improve to count as better.",
              "指标至少改善多少才算变好。"))
    metric_for_best_model: str = knob(
        "eval_loss", group="schedule",
        label=("Best-model metric", "最佳模型指标"),
        help=("The validation metric that picks the best checkpoint, e.g. eval_loss "
              "(eval_accuracy for reward models).",
              "用来挑选最佳检查点的验证指标，例如 eval_loss（奖励模型可用 eval_accuracy）。"))
    greater_is_better: bool | None = knob(
        None, group="schedule", choices=[None, True, False],
        label=("Greater is better", "越大越好"),
        help=("Whether a larger metric is better; empty = no for metrics ending in 'loss', yes "
              "otherwise.", "指标是否越大越好；留空表示以 loss 结尾的指标越小越好，其余越大越好。"))
    load_best_model_at_end: bool = knob(
        False, group="schedule",
        label=("Keep the best checkpoint as the result", "以最佳检查点作为结果"),
        help=("At the end, final/ gets the weights of the best checkpoint instead of the last "
              "step (needs a validation split).",
              "训练结束时 final/ 保存最佳检查点的权重，而不是最后一步的（需要验证集）。"))

    # ---- system ------------------------------------------------------------------------
    report_to: str | None = knob(
        None, group="system",
        label=("Experiment tracking", "实验跟踪"),
        help=("Where to log metrics besides the Train tab: empty (none), or any of tensorboard, trackio, "
              "mlflow, wandb (comma-separated). Logs stay in the run folder (wandb offline, mlflow "
              "in a local file store) unless you point their own environment variables elsewhere.",
              "除训练页外还把指标记录到哪里：留空（不记录），或 tensorboard、trackio、mlflow、wandb 中的任意几个"
              "（逗号分隔）。日志留在任务目录中（wandb 离线、mlflow 用本地文件存储），除非你用它们自己的"
              "环境变量指向别处。"))
    nproc_per_node: int = knob(
        1, group="system", min=1, max=64,
        label=("Processes", "进程数"),
        help=("Training processes on this machine. Above 1 the run is launched with torchrun.",
              "本机训练进程数。大于 1 时用 torchrun 启动。"))
    distributed_engine: str = knob(
        "ddp", group="system", choices=["ddp", "deepspeed_zero2", "deepspeed_zero3", "fsdp"],
        label=("Distributed engine", "分布式引擎"),
        help=("How several processes share the work: DDP, DeepSpeed ZeRO-2/3 or FSDP.",
              "多进程如何分工：DDP、DeepSpeed ZeRO-2/3 或 FSDP。"))
    nnodes: int = knob(
        1, group="system", min=1, max=4096,
        label=("Machines (nodes)", "机器数（节点）"),
        help=("Machines that train this run together through torchrun; run `workbench train` with "
              "the same config on each, with its own node_rank.",
              "通过 torchrun 共同训练本任务的机器数；在每台机器上用同一配置运行 `workbench train`，并设置各自的 node_rank。"))
    node_rank: int = knob(
        0, group="system", min=0, max=4095,
        label=("This machine's rank", "本机序号"),
        help=("0 on the machine that keeps the results (master_addr), 1..nnodes-1 on the others.",
              "保存结果的机器（master_addr）为 0，其他机器为 1..nnodes-1。"))
    master_addr: str = knob(
        "127.0.0.1", group="system",
        label=("Master address", "主节点地址"),
        help=("Address of node 0 that every machine can reach.", "所有机器都能访问的 0 号节点地址。"))
    master_port: int = knob(
        29500, group="system", min=1, max=65535,
        label=("Master port", "主节点端口"),
        help=("A free TCP port on node 0 for the rendezvous.", "0 号节点上用于汇合的空闲 TCP 端口。"))
    rdzv_backend: str = knob(
        "static", group="system", choices=["static", "c10d"],
        label=("Rendezvous", "汇合方式"),
        help=("static: fixed ranks (node_rank decides); c10d: torchrun's elastic rendezvous at "
              "master_addr:master_port, ranks assigned as machines join (needs rdzv_id).",
              "static：固定序号（由 node_rank 决定）；c10d：torchrun 的弹性汇合（master_addr:master_port），"
              "按加入顺序分配序号（需要 rdzv_id）。"))
    rdzv_id: str = knob(
        "workbench", group="system",
        label=("Rendezvous id", "汇合 ID"),
        help=("A name shared by the machines of one job (c10d rendezvous).", "同一作业各机器共享的名称（c10d 汇合）。"))

    # ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def non_default_dict(self) -> dict[str, Any]:
        """The fields that differ from their defaults: what a user would write in a YAML."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != f.default}

    def datasets(self) -> list[str]:
        return [d.strip() for d in self.dataset.split(",") if d.strip()]


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(RunConfig)}
_HINTS = typing.get_type_hints(RunConfig)


def field_base_type(name: str) -> tuple[type, bool]:
    """The field's scalar type and whether None is allowed."""
    hint = _HINTS[name]
    args = typing.get_args(hint)
    if args:  # X | None
        inner = [a for a in args if a is not type(None)]
        return inner[0], type(None) in args
    return hint, False


def fields_in_group(group: str) -> list[dataclasses.Field]:
    return [f for f in FIELDS.values() if f.metadata["group"] == group]


# ---- coercion ---------------------------------------------------------------------------
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"", "none", "null", "~"}


def coerce(name: str, value: Any) -> Any:
    """Turn a value from YAML, a form or the command line into the field's type.

    Raises ValueError with a message that names the field and the value."""
    typ, nullable = field_base_type(name)
    if isinstance(value, str) and typ is not str:
        value = value.strip()
        if value.lower() in _NONE:
            value = None
    elif isinstance(value, str) and nullable and not value.strip():
        value = None  # an empty optional text box means "not set"
    if value is None:
        if nullable:
            return None
        raise ValueError(f"'{name}' must be set (got an empty value)")
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError
        if typ is int:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if math.isnan(number) or math.isinf(number):
                raise ValueError
            return number
        if typ is str:
            if isinstance(value, (list, tuple)):  # dataset: [a, b] is accepted as "a,b"
                return ",".join(str(v) for v in value)
            if isinstance(value, (dict, bool)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        kind = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}[typ]
        raise ValueError(f"'{name}' must be {kind}, got {value!r}") from None
    raise TypeError(f"unsupported field type for {name}: {typ}")


def check_value(name: str, value: Any) -> str | None:
    """Range and choice check for one already-coerced value; a message or None."""
    meta = FIELDS[name].metadata
    if value is None:
        return None
    if meta["choices"] is not None and value not in meta["choices"]:
        allowed = ", ".join("empty" if c is None else str(c) for c in meta["choices"])
        return f"'{name}' is {value!r}; allowed: {allowed}"
    low, high = meta["min"], meta["max"]
    if low is not None and (value < low or (meta["min_exclusive"] and value == low)):
        op = ">" if meta["min_exclusive"] else ">="
        return f"'{name}' is {value!r}; it must be {op} {low}"
    if high is not None and value > high:
        return f"'{name}' is {value!r}; it must be <= {high}"
    return None


def unknown_key_message(key: str) -> str:
    close = difflib.get_close_matches(key, FIELDS.keys(), n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key '{key}'{hint}"


def from_dict(data: dict[str, Any], source: str | None = None) -> RunConfig:
    """Build a validated RunConfig; unknown keys and bad values are all reported at once."""
    if not isinstance(data, dict):
        raise ConfigError([f"expected a mapping of key: value, got {type(data).__name__}"], source)
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in FIELDS:
            problems.append(unknown_key_message(str(key)))
            continue
        try:
            values[key] = coerce(key, raw)
        except ValueError as err:
            problems.append(str(err))
            continue
        if (message := check_value(key, values[key])):
            problems.append(message)
    if problems:
        raise ConfigError(problems, source)
    cfg = RunConfig(**values)
    validate(cfg, source)
    return cfg


def validate(cfg: RunConfig, source: str | None = None) -> RunConfig:
    problems = [msg for name in FIELDS if (msg := check_value(name, getattr(cfg, name)))]
    problems += _cross_field_problems(cfg)
    if problems:
        raise ConfigError(problems, source)
    return cfg


def _cross_field_problems(cfg: RunConfig) -> list[str]:
    problems = []
    if not cfg.model_name_or_path.strip():
        problems.append("'model_name_or_path' is empty")
    if not cfg.datasets():
        problems.append("'dataset' is empty: name at least one dataset")
    if cfg.quantization_bit is not None and cfg.finetuning_type not in ("lora", "head"):
        problems.append(f"'quantization_bit' {cfg.quantization_bit} needs finetuning_type lora "
                        f"(QLoRA); quantized weights cannot be trained with "
                        f"'{cfg.finetuning_type}'")
    if cfg.pissa_init and cfg.quantization_bit is not None:
        problems.append("'pissa_init' cannot be combined with 'quantization_bit'")
    if cfg.use_dora and cfg.finetuning_type != "lora":
        problems.append("'use_dora' is a LoRA option; set finetuning_type: lora")
    if cfg.stage == "cls" and cfg.finetuning_type not in ("head", "lora", "full"):
        problems.append("stage 'cls' trains a classification head: use finetuning_type head, "
                        "lora (head + LoRA) or full")
    if cfg.finetuning_type == "head" and cfg.stage != "cls":
        problems.append("finetuning_type 'head' is for stage 'cls' (sequence classification)")
    if cfg.val_size and cfg.val_size < 1 and cfg.test_size and cfg.test_size < 1 \
            and cfg.val_size + cfg.test_size >= 1:
        problems.append("'val_size' + 'test_size' leave no rows to train on")
    if cfg.max_steps == 0:
        problems.append("'max_steps' is 0: use -1 to train by epochs or a positive count")
    problems += _preference_problems(cfg)
    problems += _method_problems(cfg)
    return problems


# ---- preference and reward stages (dpo, kto, rm) ------------------------------------------
_KTO_PREF_LOSSES = ("sigmoid", "apo_zero")
_RM_METHODS = ("lora", "full")


def _preference_problems(cfg: RunConfig) -> list[str]:
    problems = []
    if cfg.stage == "kto":
        if cfg.pref_loss not in _KTO_PREF_LOSSES:
            problems.append(f"'pref_loss' {cfg.pref_loss} is not a KTO loss; stage kto takes sigmoid "
                            f"(KTO) or apo_zero")
        if cfg.per_device_train_batch_size < 2:
            problems.append("stage kto estimates its KL term from the other rows of a batch: "
                            "'per_device_train_batch_size' must be at least 2")
    if cfg.stage == "dpo":
        if cfg.pref_loss == "exo_pair" and cfg.pref_label_smoothing == 0:
            problems.append("'pref_loss' exo_pair needs 'pref_label_smoothing' above 0 (e.g. 0.001)")
        if cfg.pref_loss == "robust" and cfg.pref_label_smoothing >= 0.5:
            problems.append("'pref_loss' robust needs 'pref_label_smoothing' below 0.5 (e.g. 0.1)")
    if cfg.stage == "rm" and cfg.finetuning_type not in _RM_METHODS:
        problems.append(f"stage rm trains a scalar reward head: use finetuning_type "
                        f"{', '.join(_RM_METHODS)}, not '{cfg.finetuning_type}'")
    return problems


# ---- methods helper: combinations of stage, method and options that cannot run ------------
LORA_OPTIONS = ("use_rslora", "use_dora", "pissa_init", "loraplus_lr_ratio")
LAYERED_METHODS = ("full", "freeze", "lora", "ia3", "bitfit")


def _method_problems(cfg: RunConfig) -> list[str]:
    """Refuse, before loading anything, what would fail later or silently do nothing."""
    problems = []
    kind = cfg.finetuning_type
    for option in LORA_OPTIONS:
        if option != "use_dora" and getattr(cfg, option) and kind != "lora":
            problems.append(f"'{option}' is a LoRA option; it does nothing with finetuning_type "
                            f"'{kind}' (set finetuning_type: lora)")
    if cfg.layerwise_lr_decay != 1.0 and kind not in LAYERED_METHODS:
        problems.append(f"'layerwise_lr_decay' scales the rates of transformer layers; "
                        f"finetuning_type '{kind}' trains none (use one of {', '.join(LAYERED_METHODS)})")
    if cfg.quantization_bit == 8 and cfg.quantization_type != "nf4":
        problems.append(f"'quantization_type' {cfg.quantization_type} is a 4-bit data type; "
                        f"quantization_bit is 8")
    if cfg.stage == "cls" and cfg.quantization_bit is not None:
        problems.append("'quantization_bit' is not supported with stage 'cls' (the classification "
                        "head must stay in full precision)")
    if cfg.stage == "cls" and cfg.packing:
        problems.append("'packing' joins conversations or documents; stage 'cls' classifies one "
                        "text per row (leave packing empty)")
    if cfg.eval_steps is not None and not cfg.val_size:
        problems.append("'eval_steps' is set but 'val_size' is 0: there is no validation split "
                        "to evaluate")
    problems += _best_model_problems(cfg)
    problems += _tracking_problems(cfg)
    if cfg.node_rank >= cfg.nnodes:
        problems.append(f"'node_rank' {cfg.node_rank} must be below 'nnodes' ({cfg.nnodes}): ranks are 0..nnodes-1")
    return problems


TRACKERS = ("tensorboard", "trackio", "mlflow", "wandb")


def trackers(cfg: RunConfig) -> list[str]:
    """The tracking integrations a run reports to (empty for none)."""
    names = [n.strip().lower() for n in str(cfg.report_to or "none").split(",") if n.strip()]
    return [n for n in names if n != "none"]


def _tracking_problems(cfg: RunConfig) -> list[str]:
    import importlib.util

    problems = []
    for name in trackers(cfg):
        if name not in TRACKERS:
            problems.append(f"'report_to' {name!r} is not a tracker: use none or any of {', '.join(TRACKERS)}")
        elif importlib.util.find_spec(name) is None:
            problems.append(f"'report_to' {name} needs the {name} package: pip install {name}")
    return problems


def _best_model_problems(cfg: RunConfig) -> list[str]:
    """Early stopping and keeping the best checkpoint need validations that line up with saves."""
    wanted = [k for k in ("early_stopping_patience", "load_best_model_at_end") if getattr(cfg, k)]
    if not wanted:
        return []
    problems = []
    if not cfg.val_size:
        problems.append(f"'{wanted[0]}' needs a validation split: set 'val_size' above 0")
    if cfg.eval_steps is not None and cfg.save_steps % cfg.eval_steps:
        problems.append(f"'{wanted[0]}' compares checkpoints by their validation: 'save_steps' "
                        f"({cfg.save_steps}) must be a multiple of 'eval_steps' ({cfg.eval_steps})")
    if not cfg.metric_for_best_model.strip():
        problems.append("'metric_for_best_model' is empty: name a validation metric such as eval_loss")
    return problems


# ---- YAML and overrides -------------------------------------------------------------------
def parse_overrides(items: list[str]) -> dict[str, str]:
    """`key=value` strings from `--set` into a dict; a malformed one is an error."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError([f"--set expects key=value, got {item!r}"])
        out[key.strip()] = value
    return out


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> RunConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"config file not found: {path}"])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError([f"not valid YAML: {err}"], str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError(["not UTF-8 text"], str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError([f"expected a mapping of key: value, got {type(data).__name__}"], str(path))
    data.update(parse_overrides(overrides or []))
    return from_dict(data, source=str(path))


def to_yaml(cfg: RunConfig, full: bool = False) -> str:
    data = cfg.to_dict() if full else cfg.non_default_dict()
    # keep a stable, readable order: the declaration order
    ordered = {name: data[name] for name in FIELDS if name in data}
    return yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a file so that readers see the old or the new content, never a half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes owner-only files; these are ordinary files
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_config(cfg: RunConfig, path: str | os.PathLike) -> None:
    atomic_write_text(path, to_yaml(cfg, full=True))
