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

# Template names: ours (auto, chatml, plain) and LLaMA-Factory's text-only ones; how each is
# rendered is decided in data/templates.py.
TEMPLATE_NAMES = [
    "auto",
    "chatml",
    "plain",
    "default",
    "empty",
    "llama2",
    "llama3",
    "llama4",
    "mistral",
    "qwen",
    "qwen2",
    "qwen3",
    "qwen3_nothink",
    "qwen3_5",
    "qwen3_5_nothink",
    "smollm",
    "smollm2",
    "gemma",
    "gemma3",
    "phi",
    "phi4",
    "deepseek3",
    "glm4",
    "yi",
    "zephyr",
]

GROUPS = ("model", "data", "method", "lora", "preference", "train", "schedule", "system", "rl")


class ConfigError(ValueError):
    """A config that cannot run. The message names every offending key and why."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        super().__init__(f"invalid config{where}:\n" + "\n".join(f"  - {p}" for p in self.problems))


def knob(
    default: Any,
    *,
    group: str,
    label: tuple[str, str],
    help: tuple[str, str],
    choices: list | None = None,
    min: float | None = None,
    max: float | None = None,
    min_exclusive: bool = False,
) -> Any:
    """Declare one field: default, allowed values, group, and (en, zh) label and help."""
    assert group in GROUPS, group
    meta = {
        "group": group,
        "label": {"en": label[0], "zh": label[1]},
        "help": {"en": help[0], "zh": help[1]},
        "choices": choices,
        "min": min,
        "max": max,
        "min_exclusive": min_exclusive,
    }
    return field(default=default, metadata=meta)


# DPO loss types of trl's DPOTrainer that Workbench offers (names as trl spells them)
DPO_LOSSES = (
    "sigmoid",
    "ipo",
    "hinge",
    "robust",
    "exo_pair",
    "nca_pair",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sigmoid_norm",
)
REFERENCE_FREE_LOSSES = ("orpo", "simpo")
# stage kto: the two losses trl's KTOTrainer has, keyed by the pref_loss that selects them
KTO_LOSSES = {"sigmoid": "kto", "apo_zero": "apo_zero_unpaired"}


@dataclass
class RunConfig:
    # ---- model -------------------------------------------------------------------------
    model_name_or_path: str = knob(
        DEFAULT_MODEL,
        group="model",
        label=("Model", "模型"),
        help=(
            "A known model name, a Hugging Face hub id, or a local folder. The default is embedded and works offline.",
            "已知模型名、Hugging Face Hub 上的模型 ID 或本地文件夹。默认模型已内置，可离线使用。",
        ),
    )
    template: str = knob(
        "auto",
        group="model",
        choices=TEMPLATE_NAMES,
        label=("Chat template", "对话模板"),
        help=(
            "How conversations become text. 'auto' uses the tokenizer's own template "
            "(plain fallback if it has none); chatml and plain are built in; LLaMA-Factory's "
            "names (llama3, qwen3, ...) use the tokenizer's own template and warn when it is of "
            "another family; names ending in _nothink turn thinking off.",
            "对话如何转成文本。auto 使用分词器自带模板（没有则退回 plain）；chatml 与 plain 为内置模板；"
            "LLaMA-Factory 的模板名（llama3、qwen3 等）使用分词器自带模板，若其属于别的模型家族则给出警告；"
            "以 _nothink 结尾的名称关闭思考模式。",
        ),
    )
    quantization_bit: int | None = knob(
        None,
        group="model",
        choices=[None, 4, 8],
        label=("Quantization bits", "量化位数"),
        help=(
            "Load the base weights in 4 or 8 bit with bitsandbytes (QLoRA when combined "
            "with LoRA). Empty = no quantization.",
            "用 bitsandbytes 以 4 位或 8 位加载基座权重（与 LoRA 组合即 QLoRA）。留空表示不量化。",
        ),
    )
    quantization_type: str = knob(
        "nf4",
        group="model",
        choices=["nf4", "fp4"],
        label=("4-bit data type", "4 位数据类型"),
        help=(
            "Data type of 4-bit weights: nf4 (NormalFloat, best for normally distributed weights) or fp4.",
            "4 位权重的数据类型：nf4（NormalFloat，适合正态分布权重）或 fp4。",
        ),
    )
    double_quantization: bool = knob(
        True,
        group="model",
        label=("Double quantization", "双重量化"),
        help=(
            "Also quantize the 4-bit quantization constants (saves ~0.4 bit per weight).",
            "对 4 位量化常数再量化一次（每个权重约省 0.4 位）。",
        ),
    )
    compute_type: str = knob(
        "auto",
        group="model",
        choices=["auto", "fp32", "bf16", "fp16"],
        label=("Compute type", "计算精度"),
        help=(
            "Numeric type for training. 'auto' picks bf16 on GPUs that support it, else "
            "fp16 on GPUs; on a CPU it measures once whether bf16 matrix products beat fp32 "
            "clearly at the model's shapes (CPUs with AMX/AVX512-BF16) and picks bf16 then, "
            "fp32 otherwise (bf16 is ~100x slower on CPUs without it). bf16 on a CPU is mixed "
            "precision: fp32 weights and optimizer, bf16 products.",
            "训练使用的数值类型。auto：支持 bf16 的 GPU 用 bf16，其他 GPU 用 fp16；在 CPU 上先实测一次"
            "该模型形状下 bf16 矩阵乘法是否明显快于 fp32（带 AMX/AVX512-BF16 的 CPU），是则用 bf16，"
            "否则用 fp32（没有原生 bf16 的 CPU 上 bf16 约慢 100 倍）。CPU 上的 bf16 为混合精度："
            "权重与优化器为 fp32，矩阵乘法为 bf16。",
        ),
    )
    trust_remote_code: bool = knob(
        False,
        group="model",
        label=("Trust remote code", "信任远程代码"),
        help=(
            "Allow a model or tokenizer folder to run its own Python code when loaded. Off by "
            "default: turn it on only for models whose code you trust.",
            "允许模型或分词器目录在加载时运行其自带的 Python 代码。默认关闭：只对信任其代码的模型开启。",
        ),
    )
    enable_thinking: bool = knob(
        True,
        group="model",
        label=("Thinking", "思考模式"),
        help=(
            "For templates that have a thinking mode (Qwen3): keep it on. Off renders every "
            "reply without a thinking block (template names ending in _nothink turn it off).",
            "对带思考模式的模板（Qwen3）：保持开启。关闭后每条回复都不带思考块（以 _nothink 结尾的模板名会关闭它）。",
        ),
    )

    # ---- data --------------------------------------------------------------------------
    dataset: str = knob(
        "identity",
        group="data",
        label=("Dataset", "数据集"),
        help=(
            "Name(s) from the dataset registry (dataset_info.json in dataset_dir), comma-separated to mix several.",
            "数据集注册表（dataset_dir 中的 dataset_info.json）里的名称，多个用逗号分隔。",
        ),
    )
    dataset_dir: str = knob(
        "data",
        group="data",
        label=("Dataset folder", "数据集目录"),
        help=(
            "Your folder holding dataset_info.json and the files it names (relative to the working "
            "folder), read beside the shipped datasets; your entry wins a shared name.",
            "你自己的数据目录，存放 dataset_info.json 及其所列文件（相对于当前工作目录），与内置数据集一并读取；"
            "同名时以你的条目为准。",
        ),
    )
    cutoff_len: int = knob(
        1024,
        group="data",
        min=8,
        max=131072,
        label=("Cutoff length", "截断长度"),
        help=("Longest tokenized example; longer ones are truncated.", "分词后样本的最大长度，超出部分截断。"),
    )
    max_samples: int | None = knob(
        None,
        group="data",
        min=1,
        label=("Max samples", "最大样本数"),
        help=(
            "Use at most this many rows of each dataset (empty = all).",
            "每个数据集最多使用的行数（留空表示全部）。",
        ),
    )
    val_size: float = knob(
        0.0,
        group="data",
        min=0.0,
        label=("Validation size", "验证集大小"),
        help=(
            "Rows held out for validation: a fraction below 1 or a row count.",
            "留作验证集的行：小于 1 表示比例，否则表示行数。",
        ),
    )
    test_size: float = knob(
        0.0,
        group="data",
        min=0.0,
        label=("Test size", "测试集大小"),
        help=(
            "Rows held out for evaluation and never trained on: a fraction below 1 or a row "
            "count. A dataset with its own test file uses that file instead.",
            "留作测试、从不参与训练的行：小于 1 表示比例，否则表示行数。自带测试文件的数据集使用该文件。",
        ),
    )
    train_on_prompt: bool = knob(
        False,
        group="data",
        label=("Train on prompt too", "同时训练提示部分"),
        help=(
            "Compute the loss on the whole conversation, not only the assistant replies.",
            "在整段对话上计算损失，而不只是助手回复。",
        ),
    )
    packing: bool | None = knob(
        None,
        group="data",
        choices=[None, True, False],
        label=("Packing", "序列打包"),
        help=(
            "Pack several short examples into one sequence. Empty = on for continued pretraining, off otherwise.",
            "把多个短样本拼成一条序列。留空表示继续预训练时开启，其它阶段关闭。",
        ),
    )
    identity_name: str = knob(
        "Workbench Assistant",
        group="data",
        label=("Assistant name", "助手名称"),
        help=("Replaces {{name}} in datasets such as identity.", "替换数据集（如 identity）中的 {{name}}。"),
    )
    identity_author: str = knob(
        "the Workbench team",
        group="data",
        label=("Assistant author", "助手作者"),
        help=("Replaces {{author}} in datasets such as identity.", "替换数据集（如 identity）中的 {{author}}。"),
    )
    eval_dataset: str = knob(
        "",
        group="data",
        label=("Validation dataset", "验证数据集"),
        help=(
            "Registered dataset(s) used for validation (and for do_predict) instead of a "
            "val_size cut of the training data; comma-separated.",
            "用作验证（以及 do_predict）的已注册数据集，代替从训练数据切出的 val_size；多个用逗号分隔。",
        ),
    )
    default_system: str = knob(
        "",
        group="data",
        label=("Default system prompt", "默认系统提示"),
        help=("A system message put before conversations that have none.", "在没有系统消息的对话前加入的系统消息。"),
    )
    mask_history: bool = knob(
        False,
        group="data",
        label=("Train on last reply only", "只训练最后一轮回复"),
        help=(
            "In multi-turn conversations compute the loss on the last assistant reply only.",
            "多轮对话中只在最后一条助手回复上计算损失。",
        ),
    )
    tokenized_path: str = knob(
        "",
        group="data",
        label=("Tokenized data folder", "分词数据目录"),
        help=(
            "Prepare data only: tokenize the datasets, save them to this folder (datasets' "
            "save_to_disk) and stop without loading the model or training.",
            "只准备数据：对数据集分词后保存到该目录（datasets 的 save_to_disk），然后停止，不加载模型也不训练。",
        ),
    )

    # ---- method ------------------------------------------------------------------------
    stage: str = knob(
        "sft",
        group="method",
        choices=["sft", "pt", "dpo", "kto", "rm", "cls", "grpo", "rloo"],
        label=("Stage", "训练阶段"),
        help=(
            "What the loss is: sft (supervised on conversations), pt (continued pretraining "
            "on raw text), dpo (preference pairs), kto (liked/disliked answers), rm (reward "
            "model), cls (sequence classification), grpo / rloo (online reinforcement learning "
            "from rewards on sampled answers).",
            "损失是什么：sft（对话监督微调）、pt（原始文本继续预训练）、dpo（偏好对）、"
            "kto（好/坏回答标注）、rm（奖励模型）、cls（序列分类）、grpo / rloo（根据采样回答的奖励"
            "进行在线强化学习）。",
        ),
    )
    finetuning_type: str = knob(
        "lora",
        group="method",
        choices=["lora", "full", "freeze", "bitfit", "ia3", "prompt_tuning", "prefix_tuning", "head"],
        label=("Method", "微调方法"),
        help=(
            "What is trainable: lora (low-rank adapters; QLoRA with quantization_bit), full, "
            "freeze (last N layers), bitfit (biases only), ia3, prompt_tuning, prefix_tuning, "
            "head (a classification head only).",
            "哪些参数可训练：lora（低秩适配器；配合量化即 QLoRA）、full（全参数）、freeze（仅最后 N 层）、"
            "bitfit（仅偏置）、ia3、prompt_tuning（软提示）、prefix_tuning（前缀）、head（仅分类头）。",
        ),
    )
    freeze_trainable_layers: int = knob(
        2,
        group="method",
        min=-100_000,
        max=100_000,
        label=("Trainable layers", "可训练层数"),
        help=(
            "Freeze tuning: train only the last N transformer layers; a negative number -N "
            "trains the first N layers instead.",
            "冻结微调：只训练最后 N 个 Transformer 层；负数 -N 表示改为训练最前面的 N 层。",
        ),
    )
    freeze_trainable_modules: str = knob(
        "all",
        group="method",
        label=("Trainable modules", "可训练模块"),
        help=(
            "Freeze tuning: module names inside those layers to train (comma-separated, e.g. mlp,self_attn), or 'all'.",
            "冻结微调：这些层中要训练的模块名（逗号分隔，如 mlp,self_attn），或 all。",
        ),
    )
    layerwise_lr_decay: float = knob(
        1.0,
        group="method",
        min=0.0,
        max=1.0,
        min_exclusive=True,
        label=("Layer-wise LR decay", "逐层学习率衰减"),
        help=(
            "Each layer below the top learns at this factor times the layer above it (1.0 = same rate everywhere).",
            "每往下一层，学习率乘以该系数（1.0 表示各层相同）。",
        ),
    )
    adapter_name_or_path: str | None = knob(
        None,
        group="method",
        label=("Continue from", "继续自"),
        help=(
            "Start from an existing adapter instead of a new one: a finished run, one of its "
            "checkpoints, or any PEFT adapter folder. Continues that adapter (more epochs, "
            "other data, or the next stage such as DPO after SFT). Empty = a new adapter.",
            "从已有适配器开始而不是新建：已完成的训练、它的某个检查点，或任意 PEFT 适配器目录。"
            "继续训练该适配器（更多轮数、其他数据，或下一阶段，如 SFT 之后的 DPO）。留空表示新建适配器。",
        ),
    )
    num_virtual_tokens: int = knob(
        20,
        group="method",
        min=1,
        max=1024,
        label=("Virtual tokens", "虚拟 token 数"),
        help=("Prompt and prefix tuning: length of the learned soft prompt.", "提示微调与前缀微调：学习的软提示长度。"),
    )

    # ---- lora --------------------------------------------------------------------------
    lora_rank: int = knob(
        8,
        group="lora",
        min=1,
        max=1024,
        label=("LoRA rank", "LoRA 秩"),
        help=("Rank of the low-rank update matrices.", "低秩更新矩阵的秩。"),
    )
    lora_alpha: int | None = knob(
        None,
        group="lora",
        min=1,
        label=("LoRA alpha", "LoRA alpha"),
        help=(
            "Scale of the LoRA update (alpha/rank). Empty = twice the rank.",
            "LoRA 更新的缩放（alpha/秩）。留空表示秩的两倍。",
        ),
    )
    lora_dropout: float = knob(
        0.0,
        group="lora",
        min=0.0,
        max=0.9,
        label=("LoRA dropout", "LoRA dropout"),
        help=("Dropout on the LoRA branch.", "LoRA 分支上的 dropout。"),
    )
    lora_target: str = knob(
        "all",
        group="lora",
        label=("LoRA target modules", "LoRA 目标模块"),
        help=(
            "Linear modules that get adapters, comma-separated (e.g. q_proj,v_proj), or "
            "'all' for every linear layer except the output head.",
            "加适配器的线性层，逗号分隔（如 q_proj,v_proj），或 all 表示除输出头外的所有线性层。",
        ),
    )
    use_rslora: bool = knob(
        False,
        group="lora",
        label=("rsLoRA", "rsLoRA"),
        help=("Rank-stabilised scaling alpha/sqrt(rank).", "秩稳定缩放 alpha/sqrt(秩)。"),
    )
    use_dora: bool = knob(
        False,
        group="lora",
        label=("DoRA", "DoRA"),
        help=("Weight-decomposed LoRA (learns magnitude and direction).", "权重分解 LoRA（分别学习幅度和方向）。"),
    )
    pissa_init: bool = knob(
        False,
        group="lora",
        label=("PiSSA initialisation", "PiSSA 初始化"),
        help=(
            "Initialise adapters from the principal singular vectors of the weights.",
            "用权重的主奇异向量初始化适配器。",
        ),
    )
    pissa_iter: int = knob(
        -1,
        group="lora",
        min=-1,
        max=10_000,
        label=("PiSSA iterations", "PiSSA 迭代次数"),
        help=(
            "PiSSA initialisation: fast SVD with this many iterations (e.g. 16); -1 = exact SVD.",
            "PiSSA 初始化：用该迭代次数做快速 SVD（如 16）；-1 表示精确 SVD。",
        ),
    )
    loraplus_lr_ratio: float | None = knob(
        None,
        group="lora",
        min=1.0,
        label=("LoRA+ LR ratio", "LoRA+ 学习率比"),
        help=(
            "LoRA+: the B matrices learn this many times faster than A (e.g. 16). Empty = off.",
            "LoRA+：B 矩阵的学习率是 A 的多少倍（如 16）。留空表示关闭。",
        ),
    )

    # ---- preference --------------------------------------------------------------------
    pref_loss: str = knob(
        "sigmoid",
        group="preference",
        choices=[*DPO_LOSSES, *REFERENCE_FREE_LOSSES],
        label=("Preference loss", "偏好损失"),
        help=(
            "Loss of stage dpo: sigmoid (DPO), ipo, hinge, robust, exo_pair, nca_pair, bco_pair, "
            "sppo_hard, aot, aot_unpaired, apo_zero, apo_down, discopop, sigmoid_norm (trl's DPO "
            "losses), or the reference-free orpo and simpo. Stage kto: sigmoid (KTO) or apo_zero.",
            "dpo 阶段的损失：sigmoid（DPO）、ipo、hinge、robust、exo_pair、nca_pair、bco_pair、sppo_hard、"
            "aot、aot_unpaired、apo_zero、apo_down、discopop、sigmoid_norm（trl 的 DPO 损失），"
            "或无需参考模型的 orpo 与 simpo。kto 阶段：sigmoid（KTO）或 apo_zero。",
        ),
    )
    pref_beta: float = knob(
        0.1,
        group="preference",
        min=0.0,
        min_exclusive=True,
        label=("Preference beta", "偏好 beta"),
        help=(
            "How far the policy may move from the reference model (ORPO: weight of the odds-ratio term).",
            "策略模型偏离参考模型的程度（ORPO：几率比项的权重）。",
        ),
    )
    use_ref_model: bool = knob(
        True,
        group="preference",
        label=("Use reference model", "使用参考模型"),
        help=(
            "Keep a frozen reference (the base; for LoRA the adapter switched off) during "
            "training. Off = its log-probabilities are computed once before training and no "
            "reference is kept. orpo and simpo never use a reference.",
            "训练时保留冻结的参考模型（基座；LoRA 时即关闭适配器）。关闭：训练前一次性算出参考模型的"
            "对数概率，训练中不保留参考模型。orpo 与 simpo 从不使用参考模型。",
        ),
    )
    pref_label_smoothing: float = knob(
        0.0,
        group="preference",
        min=0.0,
        max=0.5,
        label=("Preference label smoothing", "偏好标签平滑"),
        help=(
            "Losses robust and exo_pair: assumed share of preference labels that are wrong "
            "(robust: below 0.5, e.g. 0.1; exo_pair needs more than 0, e.g. 0.001).",
            "robust 与 exo_pair 损失：假定标注错误的偏好所占比例（robust：小于 0.5，如 0.1；"
            "exo_pair 须大于 0，如 0.001）。",
        ),
    )

    # ---- rl: online stages grpo and rloo (trl's names) ------------------------------------
    reward_funcs: str = knob(
        "exact_match",
        group="rl",
        label=("Reward rules", "奖励规则"),
        help=(
            "Rule rewards of stages grpo/rloo, comma-separated: exact_match and numeric_match "
            "(against the row's reference answer), regex, json, length. May be empty when a "
            "reward model is set.",
            "grpo/rloo 阶段的规则奖励，逗号分隔：exact_match 与 numeric_match（对照该行的参考答案）、"
            "regex、json、length。设置了奖励模型时可留空。",
        ),
    )
    reward_weights: str = knob(
        "",
        group="rl",
        label=("Reward weights", "奖励权重"),
        help=(
            "One weight per reward, comma-separated, in the order of the rules, then the reward "
            "model. Empty = 1 each; the reward is the weighted sum.",
            "每个奖励一个权重，逗号分隔，顺序为各规则，最后是奖励模型。留空表示都为 1；奖励为加权和。",
        ),
    )
    reward_model: str | None = knob(
        None,
        group="rl",
        label=("Reward model run", "奖励模型运行"),
        help=(
            "A finished run of stage rm whose score is a reward (run id). Empty = rules only.",
            "一个已完成的 rm 阶段运行（运行 ID），其打分作为奖励。留空表示只用规则。",
        ),
    )
    reward_regex: str = knob(
        "",
        group="rl",
        label=("Reward regex", "奖励正则"),
        help=(
            "Rule regex: the answer earns 1 when this regular expression matches it (Python "
            "syntax, searched anywhere; anchor with ^ and $).",
            "regex 规则：回答匹配该正则表达式时得 1（Python 语法，任意位置匹配；用 ^ 与 $ 锚定）。",
        ),
    )
    reward_json_schema: str = knob(
        "",
        group="rl",
        label=("Reward JSON schema", "奖励 JSON 模式"),
        help=(
            "Rule json: the answer earns 1 when it is valid JSON; with a schema (JSON text: "
            "type, required, properties) it must also match it.",
            "json 规则：回答是合法 JSON 时得 1；给出模式（JSON 文本：type、required、properties）时还须符合它。",
        ),
    )
    reward_min_length: int = knob(
        0,
        group="rl",
        min=0,
        label=("Reward min length", "奖励最短长度"),
        help=(
            "Rule length: the answer earns 1 when it has at least this many characters (and at most the max).",
            "length 规则：回答至少有这么多字符（且不超过最长长度）时得 1。",
        ),
    )
    reward_max_length: int | None = knob(
        None,
        group="rl",
        min=1,
        label=("Reward max length", "奖励最长长度"),
        help=(
            "Rule length: the most characters an answer may have to earn 1 (empty = no limit).",
            "length 规则：得 1 的回答最多可有的字符数（留空表示不限）。",
        ),
    )
    num_generations: int = knob(
        4,
        group="rl",
        min=2,
        max=1024,
        label=("Answers per prompt", "每个提示的回答数"),
        help=(
            "Sampled answers per prompt, compared with each other (batch size x gradient "
            "accumulation must be a multiple of it).",
            "每个提示采样的回答数，彼此比较（批大小 × 梯度累积须是它的倍数）。",
        ),
    )
    max_completion_length: int = knob(
        64,
        group="rl",
        min=1,
        max=131072,
        label=("Max answer tokens", "回答最大 token 数"),
        help=("Longest sampled answer, in tokens.", "采样回答的最大长度（token）。"),
    )
    beta: float = knob(
        0.04,
        group="rl",
        min=0.0,
        label=("KL beta", "KL beta"),
        help=(
            "Weight of the KL penalty against the reference (the base; for LoRA the adapter "
            "switched off). 0 = no reference.",
            "相对参考模型（基座；LoRA 时即关闭适配器）的 KL 惩罚权重。0 表示不用参考模型。",
        ),
    )
    temperature: float = knob(
        1.0,
        group="rl",
        min=0.0,
        max=10.0,
        min_exclusive=True,
        label=("Sampling temperature", "采样温度"),
        help=("Temperature of the sampled answers.", "采样回答的温度。"),
    )

    # ---- train (TrainingArguments names) -----------------------------------------------
    output_dir: str = knob(
        "",
        group="train",
        label=("Output folder", "输出目录"),
        help=(
            "Where the run is saved. Empty = a new folder under saves/.",
            "训练结果保存位置。留空表示在 saves/ 下新建目录。",
        ),
    )
    learning_rate: float = knob(
        1e-3,
        group="train",
        min=0.0,
        max=1.0,
        min_exclusive=True,
        label=("Learning rate", "学习率"),
        help=(
            "Peak learning rate of the optimizer. LoRA on small models: 1e-4 to 1e-3; full fine-tuning: 1e-5 to 5e-5.",
            "优化器的峰值学习率。小模型上的 LoRA：1e-4 到 1e-3；全参数微调：1e-5 到 5e-5。",
        ),
    )
    num_train_epochs: float = knob(
        3.0,
        group="train",
        min=0.0,
        max=10000.0,
        min_exclusive=True,
        label=("Epochs", "训练轮数"),
        help=(
            "Passes over the training set (ignored when max_steps > 0).",
            "遍历训练集的次数（max_steps > 0 时忽略）。",
        ),
    )
    max_steps: int = knob(
        -1,
        group="train",
        min=-1,
        max=100_000_000,
        label=("Max steps", "最大步数"),
        help=("Stop after this many optimizer steps (-1 = use epochs).", "训练这么多个优化步后停止（-1 表示按轮数）。"),
    )
    per_device_train_batch_size: int = knob(
        4,
        group="train",
        min=1,
        max=4096,
        label=("Batch size", "批大小"),
        help=("Examples per device per forward pass.", "每个设备每次前向的样本数。"),
    )
    per_device_eval_batch_size: int = knob(
        4,
        group="train",
        min=1,
        max=4096,
        label=("Eval batch size", "验证批大小"),
        help=("Examples per device per evaluation pass.", "每个设备每次验证的样本数。"),
    )
    gradient_accumulation_steps: int = knob(
        1,
        group="train",
        min=1,
        max=4096,
        label=("Gradient accumulation", "梯度累积"),
        help=("Forward passes summed into one optimizer step.", "累加成一个优化步的前向次数。"),
    )
    optim: str = knob(
        "adamw_torch",
        group="train",
        choices=["adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "adamw_bnb_8bit", "paged_adamw_8bit"],
        label=("Optimizer", "优化器"),
        help=("Optimizer (Hugging Face names).", "优化器（Hugging Face 名称）。"),
    )
    weight_decay: float = knob(
        0.0,
        group="train",
        min=0.0,
        max=1.0,
        label=("Weight decay", "权重衰减"),
        help=("Decoupled L2 weight decay.", "解耦的 L2 权重衰减。"),
    )
    max_grad_norm: float = knob(
        1.0,
        group="train",
        min=0.0,
        max=1e6,
        label=("Max gradient norm", "最大梯度范数"),
        help=("Clip gradients to this norm (0 = no clipping).", "将梯度裁剪到该范数（0 表示不裁剪）。"),
    )
    neftune_noise_alpha: float | None = knob(
        None,
        group="train",
        min=0.0,
        max=100.0,
        label=("NEFTune noise", "NEFTune 噪声"),
        help=(
            "Add uniform noise of this scale to embeddings during training (e.g. 5). Empty = off.",
            "训练时向词嵌入加入该尺度的均匀噪声（如 5）。留空表示关闭。",
        ),
    )
    activation_checkpointing: bool = knob(
        False,
        group="train",
        label=("Activation checkpointing", "激活检查点"),
        help=(
            "Recompute activations in the backward pass: less memory, ~30% more compute.",
            "反向传播时重算激活：省显存，约多 30% 计算。",
        ),
    )
    torch_compile: bool = knob(
        False,
        group="train",
        label=("torch.compile", "torch.compile"),
        help=(
            "Compile the model with torch.compile (slow first step, may be faster after).",
            "用 torch.compile 编译模型（首步慢，之后可能更快）。",
        ),
    )
    seed: int = knob(
        42,
        group="train",
        min=0,
        max=2**32 - 1,
        label=("Seed", "随机种子"),
        help=("Seed for initialisation, shuffling and data splits.", "初始化、打乱与数据划分的随机种子。"),
    )
    resume_from_checkpoint: str | None = knob(
        None,
        group="train",
        label=("Resume from checkpoint", "从检查点恢复"),
        help=(
            "A checkpoint folder to continue from, or 'last' for the newest complete one.",
            "要继续训练的检查点目录，或 last 表示最新的完整检查点。",
        ),
    )
    # ---- methods helper: model dropout --------------------------------------------------
    dropout: float | None = knob(
        None,
        group="train",
        min=0.0,
        max=0.9,
        label=("Dropout", "Dropout"),
        help=(
            "Dropout probability inside the model (attention and hidden layers) while "
            "training. Empty = the model's own setting.",
            "训练时模型内部（注意力与隐藏层）的 dropout 概率。留空表示沿用模型自身设置。",
        ),
    )
    do_train: bool = knob(
        True,
        group="train",
        label=("Train", "训练"),
        help=(
            "Train the model. Off with do_predict: only predict (an evaluation with the base "
            "model or adapter_name_or_path); off with tokenized_path: only prepare the data.",
            "训练模型。关闭并开启 do_predict：只做预测（用基座模型或 adapter_name_or_path 评估）；"
            "关闭并设置 tokenized_path：只准备数据。",
        ),
    )
    do_predict: bool = knob(
        False,
        group="train",
        label=("Predict after training", "训练后预测"),
        help=(
            "Evaluate on eval_dataset (or the test split) after training, or instead of it when "
            "nothing is trained (do_train: false), writing a predictions file.",
            "训练后（或在不训练时，do_train: false）在 eval_dataset（或测试集）上评估，并写出预测文件。",
        ),
    )
    predict_with_generate: bool = knob(
        False,
        group="train",
        label=("Predict by generating", "预测时生成"),
        help=(
            "With do_predict: generate each reply and score it against the reference (BLEU/ROUGE), besides the loss.",
            "配合 do_predict：逐条生成回复并与参考答案比较打分（BLEU/ROUGE），另计损失。",
        ),
    )
    dataloader_num_workers: int = knob(
        0,
        group="train",
        min=0,
        max=256,
        label=("Data loader workers", "数据加载进程数"),
        help=(
            "Worker processes that feed batches to the trainer (Trainer option; 0 = in the training process).",
            "为训练器准备批数据的子进程数（Trainer 选项；0 表示在训练进程内）。",
        ),
    )
    ddp_timeout: int = knob(
        1800,
        group="train",
        min=1,
        max=2**31 - 1,
        label=("Process group timeout (s)", "进程组超时（秒）"),
        help=(
            "Seconds several training processes wait for each other before giving up (Trainer option).",
            "多个训练进程相互等待的最长秒数（Trainer 选项）。",
        ),
    )
    save_only_model: bool = knob(
        False,
        group="train",
        label=("Checkpoints without optimizer", "检查点不含优化器"),
        help=(
            "Checkpoints keep only the model, not the optimizer and scheduler: smaller, but a "
            "run cannot resume from them (Trainer option).",
            "检查点只保存模型，不含优化器与调度器：更小，但无法从中恢复训练（Trainer 选项）。",
        ),
    )
    run_name: str = knob(
        "",
        group="train",
        label=("Run name", "运行名称"),
        help=(
            "Name shown by experiment trackers (Trainer option). Empty = the run folder's name.",
            "实验跟踪工具中显示的名称（Trainer 选项）。留空表示用训练目录名。",
        ),
    )

    # ---- schedule ----------------------------------------------------------------------
    lr_scheduler_type: str = knob(
        "cosine",
        group="schedule",
        choices=[
            "linear",
            "cosine",
            "constant",
            "constant_with_warmup",
            "cosine_with_restarts",
            "polynomial",
            "inverse_sqrt",
        ],
        label=("LR scheduler", "学习率调度"),
        help=("How the learning rate changes over training.", "学习率在训练过程中的变化方式。"),
    )
    warmup_steps: float = knob(
        0.0,
        group="schedule",
        min=0.0,
        max=100_000_000,
        label=("Warmup", "预热"),
        help=(
            "Linear warmup: a step count, or a fraction below 1 of all steps.",
            "线性预热：步数，或小于 1 的总步数比例。",
        ),
    )
    logging_steps: int | None = knob(
        None,
        group="schedule",
        min=1,
        max=100_000_000,
        label=("Log every N steps", "每 N 步记录"),
        help=(
            "Record loss and learning rate every N steps (empty = about 50 points per run, at least every 10 steps).",
            "每 N 步记录一次损失和学习率（留空表示每次训练约 50 个点，至少每 10 步一次）。",
        ),
    )
    save_steps: int = knob(
        100,
        group="schedule",
        min=1,
        max=100_000_000,
        label=("Save every N steps", "每 N 步保存"),
        help=("Write a checkpoint every N steps.", "每 N 步保存一个检查点。"),
    )
    save_total_limit: int | None = knob(
        3,
        group="schedule",
        min=1,
        max=100_000,
        label=("Checkpoints to keep", "保留检查点数"),
        help=("Keep at most this many checkpoints (empty = all).", "最多保留的检查点数（留空表示全部）。"),
    )
    eval_steps: int | None = knob(
        None,
        group="schedule",
        min=1,
        max=100_000_000,
        label=("Validate every N steps", "每 N 步验证"),
        help=(
            "Run validation every N steps when there is a validation split (empty = at the same rate as saving).",
            "存在验证集时每 N 步验证一次（留空表示与保存频率相同）。",
        ),
    )
    early_stopping_patience: int | None = knob(
        None,
        group="schedule",
        min=1,
        max=100_000,
        label=("Early stopping patience", "早停耐心"),
        help=(
            "Stop when the best-model metric has not improved for this many validations in a "
            "row (needs a validation split; empty = never stop early).",
            "最佳模型指标连续这么多次验证没有改善时停止训练（需要验证集；留空表示不早停）。",
        ),
    )
    early_stopping_threshold: float = knob(
        0.0,
        group="schedule",
        min=0.0,
        label=("Early stopping threshold", "早停阈值"),
        help=("How much the metric must improve to count as better.", "指标至少改善多少才算变好。"),
    )
    metric_for_best_model: str = knob(
        "eval_loss",
        group="schedule",
        label=("Best-model metric", "最佳模型指标"),
        help=(
            "The validation metric that picks the best checkpoint, e.g. eval_loss (eval_accuracy for reward models).",
            "用来挑选最佳检查点的验证指标，例如 eval_loss（奖励模型可用 eval_accuracy）。",
        ),
    )
    greater_is_better: bool | None = knob(
        None,
        group="schedule",
        choices=[None, True, False],
        label=("Greater is better", "越大越好"),
        help=(
            "Whether a larger metric is better; empty = no for metrics ending in 'loss', yes otherwise.",
            "指标是否越大越好；留空表示以 loss 结尾的指标越小越好，其余越大越好。",
        ),
    )
    load_best_model_at_end: bool = knob(
        False,
        group="schedule",
        label=("Keep the best checkpoint as the result", "以最佳检查点作为结果"),
        help=(
            "At the end, final/ gets the weights of the best checkpoint instead of the last "
            "step (needs a validation split).",
            "训练结束时 final/ 保存最佳检查点的权重，而不是最后一步的（需要验证集）。",
        ),
    )

    eval_strategy: str | None = knob(
        None,
        group="schedule",
        choices=[None, "no", "steps", "epoch"],
        label=("Validate when", "验证时机"),
        help=(
            "When to validate (Trainer option): steps, epoch or no. Empty = every eval_steps "
            "when there is a validation split.",
            "何时验证（Trainer 选项）：steps、epoch 或 no。留空表示存在验证集时每 eval_steps 步验证。",
        ),
    )
    save_strategy: str = knob(
        "steps",
        group="schedule",
        choices=["no", "steps", "epoch"],
        label=("Save when", "保存时机"),
        help=(
            "When to write checkpoints (Trainer option): every save_steps, every epoch, or no "
            "checkpoints (the final result is always saved).",
            "何时写检查点（Trainer 选项）：每 save_steps 步、每轮，或不写（最终结果总会保存）。",
        ),
    )

    # ---- system ------------------------------------------------------------------------
    report_to: str | None = knob(
        None,
        group="system",
        label=("Experiment tracking", "实验跟踪"),
        help=(
            "Where to log metrics besides the Train tab: empty (none), or any of tensorboard, trackio, "
            "mlflow, wandb (comma-separated). Logs stay in the run folder (wandb offline, mlflow "
            "in a local file store) unless you point their own environment variables elsewhere.",
            "除训练页外还把指标记录到哪里：留空（不记录），或 tensorboard、trackio、mlflow、wandb 中的任意几个"
            "（逗号分隔）。日志留在任务目录中（wandb 离线、mlflow 用本地文件存储），除非你用它们自己的"
            "环境变量指向别处。",
        ),
    )
    nproc_per_node: int = knob(
        1,
        group="system",
        min=1,
        max=64,
        label=("Processes", "进程数"),
        help=(
            "Training processes on this machine. Above 1 the run is launched with torchrun.",
            "本机训练进程数。大于 1 时用 torchrun 启动。",
        ),
    )
    distributed_engine: str = knob(
        "ddp",
        group="system",
        choices=["ddp", "deepspeed_zero2", "deepspeed_zero3", "fsdp"],
        label=("Distributed engine", "分布式引擎"),
        help=(
            "How several processes share the work: DDP, DeepSpeed ZeRO-2/3 or FSDP.",
            "多进程如何分工：DDP、DeepSpeed ZeRO-2/3 或 FSDP。",
        ),
    )
    nnodes: int = knob(
        1,
        group="system",
        min=1,
        max=4096,
        label=("Machines (nodes)", "机器数（节点）"),
        help=(
            "Machines that train this run together through torchrun; run `workbench train` with "
            "the same config on each, with its own node_rank.",
            "通过 torchrun 共同训练本任务的机器数；在每台机器上用同一配置运行 `workbench train`，并设置各自的 node_rank。",
        ),
    )
    node_rank: int = knob(
        0,
        group="system",
        min=0,
        max=4095,
        label=("This machine's rank", "本机序号"),
        help=(
            "0 on the machine that keeps the results (master_addr), 1..nnodes-1 on the others.",
            "保存结果的机器（master_addr）为 0，其他机器为 1..nnodes-1。",
        ),
    )
    master_addr: str = knob(
        "127.0.0.1",
        group="system",
        label=("Master address", "主节点地址"),
        help=("Address of node 0 that every machine can reach.", "所有机器都能访问的 0 号节点地址。"),
    )
    master_port: int = knob(
        29500,
        group="system",
        min=1,
        max=65535,
        label=("Master port", "主节点端口"),
        help=("A free TCP port on node 0 for the rendezvous.", "0 号节点上用于汇合的空闲 TCP 端口。"),
    )
    rdzv_backend: str = knob(
        "static",
        group="system",
        choices=["static", "c10d"],
        label=("Rendezvous", "汇合方式"),
        help=(
            "static: fixed ranks (node_rank decides); c10d: torchrun's elastic rendezvous at "
            "master_addr:master_port, ranks assigned as machines join (needs rdzv_id).",
            "static：固定序号（由 node_rank 决定）；c10d：torchrun 的弹性汇合（master_addr:master_port），"
            "按加入顺序分配序号（需要 rdzv_id）。",
        ),
    )
    rdzv_id: str = knob(
        "workbench",
        group="system",
        label=("Rendezvous id", "汇合 ID"),
        help=("A name shared by the machines of one job (c10d rendezvous).", "同一作业各机器共享的名称（c10d 汇合）。"),
    )

    # ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def non_default_dict(self) -> dict[str, Any]:
        """The fields that differ from their defaults: what a user would write in a YAML."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) != f.default}

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
                if any(isinstance(v, (list, tuple, dict)) for v in value):
                    raise ValueError
                return ",".join(str(v) for v in value)
            if isinstance(value, (dict, bool)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        kind = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}[typ]
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise ValueError(f"'{name}' must be {kind}, got {shown}") from None
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


def unknown_key_message(key: str, extra: typing.Iterable[str] = ()) -> str:
    # only a plausible typo earns a suggestion: a loose match misleads (plot_loss -> pref_loss)
    known = list(FIELDS) + list(FOREIGN_KEYS) + list(extra)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key '{key}'{hint}"


def from_dict(data: dict[str, Any], source: str | None = None, notes: list[str] | None = None) -> RunConfig:
    """Build a validated RunConfig; unknown keys and bad values are all reported at once.

    LLaMA-Factory's keys are translated first; what they change nothing about is appended to
    `notes` (when given) for the caller to print."""
    if not isinstance(data, dict):
        raise ConfigError([f"expected a mapping of key: value, got {type(data).__name__}"], source)
    if looks_like_token_file(data):
        raise ConfigError(
            [
                "this is a list of new special tokens, not a run config: adding tokens "
                "to the vocabulary is not supported by this project"
            ],
            source,
        )
    data, found_notes, problems = translate_foreign_keys(data)
    if notes is not None:
        notes.extend(found_notes)
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
        if message := check_value(key, values[key]):
            problems.append(message)
    if problems:
        raise ConfigError(problems, source)
    cfg = RunConfig(**values)
    if (note := pair_kto_rows(cfg)) and notes is not None:
        notes.append(note)
    validate(cfg, source)
    return cfg


def pair_kto_rows(cfg: RunConfig) -> str | None:
    """Stage kto takes its KL term from the other rows of a batch, so a batch of one row cannot
    train; 1 row x N accumulated (N even) runs as 2 rows x N/2: the same rows per optimizer step."""
    accum = cfg.gradient_accumulation_steps
    if cfg.stage != "kto" or cfg.per_device_train_batch_size != 1 or accum < 2 or accum % 2:
        return None
    cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps = 2, accum // 2
    return (
        f"stage kto: per_device_train_batch_size 1 x gradient_accumulation_steps {accum} runs as "
        f"2 x {accum // 2} (the same {accum} rows per step), because the KL term comes from the "
        f"other rows of a batch"
    )


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
        problems.append(
            f"'quantization_bit' {cfg.quantization_bit} needs finetuning_type lora "
            f"(QLoRA); quantized weights cannot be trained with "
            f"'{cfg.finetuning_type}'"
        )
    if cfg.pissa_init and cfg.quantization_bit is not None:
        problems.append("'pissa_init' cannot be combined with 'quantization_bit'")
    if cfg.use_dora and cfg.finetuning_type != "lora":
        problems.append("'use_dora' is a LoRA option; set finetuning_type: lora")
    if cfg.stage == "cls" and cfg.finetuning_type not in ("head", "lora", "full"):
        problems.append(
            "stage 'cls' trains a classification head: use finetuning_type head, lora (head + LoRA) or full"
        )
    if cfg.finetuning_type == "head" and cfg.stage != "cls":
        problems.append("finetuning_type 'head' is for stage 'cls' (sequence classification)")
    if cfg.val_size and cfg.val_size < 1 and cfg.test_size and cfg.test_size < 1 and cfg.val_size + cfg.test_size >= 1:
        problems.append("'val_size' + 'test_size' leave no rows to train on")
    if cfg.freeze_trainable_layers == 0:
        problems.append("'freeze_trainable_layers' is 0: use N for the last N layers or -N for the first N")
    if cfg.adapter_name_or_path and cfg.finetuning_type not in ("lora", "ia3", "prompt_tuning", "prefix_tuning"):
        problems.append(
            f"'adapter_name_or_path' continues an adapter; finetuning_type "
            f"'{cfg.finetuning_type}' trains no adapter (to continue a full or freeze "
            f"run, set model_name_or_path to its result folder)"
        )
    if not cfg.do_train and not cfg.do_predict and not cfg.tokenized_path:
        problems.append("'do_train' is false and neither do_predict nor tokenized_path is set: there is nothing to do")
    if cfg.predict_with_generate and not cfg.do_predict:
        problems.append("'predict_with_generate' needs 'do_predict: true'")
    if cfg.eval_strategy in ("steps", "epoch") and not (cfg.val_size or cfg.eval_dataset):
        problems.append(
            f"'eval_strategy' is {cfg.eval_strategy} but there is no validation data (set val_size or eval_dataset)"
        )
    if cfg.max_steps == 0:
        problems.append("'max_steps' is 0: use -1 to train by epochs or a positive count")
    problems += _preference_problems(cfg)
    problems += _method_problems(cfg)
    problems += _rl_problems(cfg)
    return problems


def _rl_problems(cfg: RunConfig) -> list[str]:
    """Stages grpo/rloo: reward settings that cannot run (what needs files is checked by
    workbench.rewards.precheck, part of the pre-run check)."""
    if cfg.stage not in ("grpo", "rloo"):
        return []
    from .reward_rules import config_problems

    return config_problems(cfg)


# ---- preference and reward stages (dpo, kto, rm) ------------------------------------------
_KTO_PREF_LOSSES = ("sigmoid", "apo_zero")
_RM_METHODS = ("lora", "full")


def _preference_problems(cfg: RunConfig) -> list[str]:
    problems = []
    if cfg.stage == "kto":
        if cfg.pref_loss not in _KTO_PREF_LOSSES:
            problems.append(f"'pref_loss' {cfg.pref_loss} is not a KTO loss; stage kto takes sigmoid (KTO) or apo_zero")
        if cfg.per_device_train_batch_size < 2:
            problems.append(
                "stage kto estimates its KL term from the other rows of a batch: "
                "'per_device_train_batch_size' must be at least 2"
            )
    if cfg.stage == "dpo":
        if cfg.pref_loss == "exo_pair" and cfg.pref_label_smoothing == 0:
            problems.append("'pref_loss' exo_pair needs 'pref_label_smoothing' above 0 (e.g. 0.001)")
        if cfg.pref_loss == "robust" and cfg.pref_label_smoothing >= 0.5:
            problems.append("'pref_loss' robust needs 'pref_label_smoothing' below 0.5 (e.g. 0.1)")
    if cfg.stage == "rm" and cfg.finetuning_type not in _RM_METHODS:
        problems.append(
            f"stage rm trains a scalar reward head: use finetuning_type "
            f"{', '.join(_RM_METHODS)}, not '{cfg.finetuning_type}'"
        )
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
            problems.append(
                f"'{option}' is a LoRA option; it does nothing with finetuning_type "
                f"'{kind}' (set finetuning_type: lora)"
            )
    if cfg.layerwise_lr_decay != 1.0 and kind not in LAYERED_METHODS:
        problems.append(
            f"'layerwise_lr_decay' scales the rates of transformer layers; "
            f"finetuning_type '{kind}' trains none (use one of {', '.join(LAYERED_METHODS)})"
        )
    if cfg.quantization_bit == 8 and cfg.quantization_type != "nf4":
        problems.append(f"'quantization_type' {cfg.quantization_type} is a 4-bit data type; quantization_bit is 8")
    if cfg.stage == "cls" and cfg.quantization_bit is not None:
        problems.append(
            "'quantization_bit' is not supported with stage 'cls' (the classification head must stay in full precision)"
        )
    if cfg.stage == "cls" and cfg.packing:
        problems.append(
            "'packing' joins conversations or documents; stage 'cls' classifies one text per row (leave packing empty)"
        )
    if cfg.eval_steps is not None and not cfg.val_size and not cfg.eval_dataset:
        problems.append("'eval_steps' is set but 'val_size' is 0: there is no validation split to evaluate")
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
        problems.append(
            f"'{wanted[0]}' compares checkpoints by their validation: 'save_steps' "
            f"({cfg.save_steps}) must be a multiple of 'eval_steps' ({cfg.eval_steps})"
        )
    if not cfg.metric_for_best_model.strip():
        problems.append("'metric_for_best_model' is empty: name a validation metric such as eval_loss")
    return problems


# ---- keys written the LLaMA-Factory way ---------------------------------------------------
# Every key of a LLaMA-Factory training, inference or merge YAML has one meaning here: an alias
# that sets one of the fields above, a note (accepted; it changes nothing on this project), or a
# feature this project does not have (refused, naming the feature).


def _true(value) -> bool:
    return coerce_bool(value)


def coerce_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE or text in _NONE:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _engine_of_deepspeed(value) -> str:
    """A DeepSpeed JSON file (its zero_optimization.stage) or a stage name → distributed_engine."""
    import json
    import re

    text = str(value).strip()
    stage = None
    path = Path(text).expanduser()
    if path.is_file():
        try:
            stage = (json.loads(path.read_text(encoding="utf-8")).get("zero_optimization") or {}).get("stage")
        except (ValueError, OSError, AttributeError):
            raise ValueError(f"{text} is not a readable DeepSpeed JSON file") from None
    if stage is None:  # LLaMA-Factory's own files are named ds_z0/z2/z3(_offload)_config.json
        match = re.search(r"(?:zero|z)_?([0-3])", path.name.lower())
        if not match:
            raise ValueError(
                f"cannot tell the ZeRO stage of {text!r} (a JSON file with "
                f"zero_optimization.stage, or a name such as zero2 / ds_z3_config.json)"
            )
        stage = int(match.group(1))
    return {0: "ddp", 1: "deepspeed_zero2", 2: "deepspeed_zero2", 3: "deepspeed_zero3"}[int(stage)]


@dataclass(frozen=True)
class ForeignKey:
    """One LLaMA-Factory key: `field` + `convert` for an alias (convert returns None to leave the
    field alone), `note` for a key accepted without effect, `feature` for one refused."""

    field: str | None = None
    convert: typing.Callable[[Any], Any] | None = None
    note: str = ""
    feature: str = ""
    when: typing.Callable[[Any], bool] = lambda value: True  # refused/noted only for such values


def _alias(name: str, convert=None, note: str = "") -> ForeignKey:
    return ForeignKey(field=name, convert=convert or (lambda v: v), note=note)


def _noted(text: str, when=lambda v: True) -> ForeignKey:
    return ForeignKey(note=text, when=when)


def _refused(feature: str, when=lambda v: True) -> ForeignKey:
    return ForeignKey(feature=feature, when=when)


_IF_TRUE = _true


def _NOT_NONE(v) -> bool:
    return v not in (None, "", False)


MULTIMODAL = "multimodal (image, video, audio) training"

FOREIGN_KEYS: dict[str, ForeignKey] = {
    # aliases of fields above
    "bf16": _alias("compute_type", lambda v: "bf16" if _true(v) else None),
    "fp16": _alias("compute_type", lambda v: "fp16" if _true(v) else None),
    "pure_bf16": _alias(
        "compute_type",
        lambda v: "bf16" if _true(v) else None,
        note="pure_bf16: compute_type bf16 (the optimizer keeps its own precision)",
    ),
    "warmup_ratio": _alias("warmup_steps", lambda v: _fraction(v, "warmup_ratio")),
    "gradient_checkpointing": _alias("activation_checkpointing", _true),
    "disable_gradient_checkpointing": _alias("activation_checkpointing", lambda v: not _true(v)),
    "dpo_label_smoothing": _alias("pref_label_smoothing"),
    "deepspeed": _alias("distributed_engine", lambda v: _engine_of_deepspeed(v) if _NOT_NONE(v) else None),
    "fsdp": _alias("distributed_engine", lambda v: "fsdp" if v not in (None, "", False, []) else None),
    "quantization_method": ForeignKey(
        note="", when=lambda v: str(v).lower() != "bnb", feature="quantization methods other than bitsandbytes (bnb)"
    ),
    # accepted; nothing to do on this project
    "overwrite_output_dir": _noted(
        "overwrite_output_dir: a run never writes over another run's "
        "events; a used output_dir gets a fresh sibling folder"
    ),
    "overwrite_cache": _noted("overwrite_cache: tokenized data is cached by its inputs, so any change re-tokenizes"),
    "plot_loss": _noted("plot_loss: the loss charts always exist (Train tab, events.jsonl)"),
    "preprocessing_num_workers": _noted("preprocessing_num_workers: data is tokenized in the training process"),
    "flash_attn": _noted(
        "flash_attn: the model's default attention (sdpa) is used",
        when=lambda v: str(v).lower() not in ("auto", "sdpa", "disabled", "none"),
    ),
    "enable_liger_kernel": _noted(
        "enable_liger_kernel: Liger kernels are not available here; the standard layers are used", when=_IF_TRUE
    ),
    "use_unsloth": _noted("use_unsloth: Unsloth is not available here; peft's LoRA is used", when=_IF_TRUE),
    "use_unsloth_gc": _noted("use_unsloth_gc: plain activation checkpointing is used", when=_IF_TRUE),
    "gradient_checkpointing_kwargs": _noted(
        "gradient_checkpointing_kwargs: checkpointing is always non-reentrant here"
    ),
    "use_reentrant_gc": _noted("use_reentrant_gc: checkpointing is always non-reentrant here"),
    "fsdp_transformer_layer_cls_to_wrap": _noted(
        "fsdp_transformer_layer_cls_to_wrap: FSDP wraps the model's decoder layers itself"
    ),
    "pissa_convert": _noted("pissa_convert: a PiSSA adapter is always saved as a plain LoRA of the original base"),
    "infer_backend": _noted(
        "infer_backend: replies are generated with transformers", when=lambda v: str(v).lower() != "huggingface"
    ),
    "ignore_pad_token_for_loss": _noted("ignore_pad_token_for_loss: padding never carries loss here"),
    "save_safetensors": _noted("save_safetensors: results are always saved as safetensors"),
    "print_param_status": _noted("print_param_status: the trainable parameter count is printed"),
    "compute_accuracy": _noted("compute_accuracy: validation reports the loss"),
    "ddp_find_unused_parameters": _noted("ddp_find_unused_parameters: left to the Trainer"),
    "include_num_input_tokens_seen": _noted("include_num_input_tokens_seen: tokens are always counted"),
    "upcast_layernorm": _noted("upcast_layernorm: layer norms run at the compute type"),
    "upcast_lmhead_output": _noted("upcast_lmhead_output: the loss is computed in fp32"),
    "export_legacy_format": _noted("export_legacy_format: exports are always safetensors"),
    "export_device": _noted("export_device: merging runs on the CPU"),
    "export_size": _noted("export_size: the merged model is saved as transformers shards it"),
    "low_cpu_mem_usage": _noted("low_cpu_mem_usage: transformers' default loading is used"),
    "disable_tqdm": _noted("disable_tqdm: progress goes to events.jsonl and the log, never tqdm"),
    "tool_format": _noted("tool_format: tool calls are rendered by the chat template", when=_NOT_NONE),
    # features this project does not have
    "use_galore": _refused("GaLore", _IF_TRUE),
    "use_apollo": _refused("APOLLO", _IF_TRUE),
    "use_badam": _refused("BAdam", _IF_TRUE),
    "use_muon": _refused("the Muon optimizer", _IF_TRUE),
    "use_adam_mini": _refused("Adam-mini", _IF_TRUE),
    "use_llama_pro": _refused("LLaMA Pro (block expansion)", _IF_TRUE),
    "mixture_of_depths": _refused("mixture of depths", _NOT_NONE),
    "use_asft_loss": _refused("the ASFT loss", _IF_TRUE),
    "use_dft_loss": _refused("the DFT loss", _IF_TRUE),
    "use_eaft_loss": _refused("the EAFT loss", _IF_TRUE),
    "fp8": _refused("FP8 training", _IF_TRUE),
    "use_ray": _refused("Ray", _IF_TRUE),
    "use_kt": _refused("KTransformers", _IF_TRUE),
    "use_mca": _refused("Megatron (mcore adapter)", _IF_TRUE),
    "streaming": _refused("streaming datasets", _IF_TRUE),
    "neat_packing": _refused("neat packing (packing without cross-attention)", _IF_TRUE),
    "rope_scaling": _refused("RoPE scaling", _NOT_NONE),
    "shift_attn": _refused("shift short attention", _IF_TRUE),
    "train_from_scratch": _refused("training from scratch", _IF_TRUE),
    "create_new_adapter": _refused(
        "stacking a new adapter on an existing one (the adapter is continued instead)", _IF_TRUE
    ),
    "additional_target": _refused("extra trainable modules beside LoRA (additional_target)", _NOT_NONE),
    "export_quantization_bit": _refused("quantizing a merged export with GPTQ", _NOT_NONE),
    "export_hub_model_id": _refused("uploading to a hub", _NOT_NONE),
    "add_tokens": _refused("adding tokens to the vocabulary", _NOT_NONE),
    "add_special_tokens": _refused("adding tokens to the vocabulary", _NOT_NONE),
    "new_special_tokens_config": _refused("adding tokens to the vocabulary", _NOT_NONE),
    "freeze_vision_tower": _refused(MULTIMODAL),
    "freeze_multi_modal_projector": _refused(MULTIMODAL),
    "freeze_language_model": _refused(MULTIMODAL),
    "use_audio_in_video": _refused(MULTIMODAL),
    "crop_to_patches": _refused(MULTIMODAL),
    "vllm_maxlen": _refused("vLLM inference"),
}

# families of keys: every key with one of these prefixes belongs to the feature
FOREIGN_PREFIXES: dict[str, str] = {
    "galore_": "GaLore",
    "apollo_": "APOLLO",
    "badam_": "BAdam",
    "muon_": "the Muon optimizer",
    "oft_": "OFT (orthogonal fine-tuning)",
    "ray_": "Ray",
    "fp8_": "FP8 training",
    "asft_": "the ASFT loss",
    "image_": MULTIMODAL,
    "video_": MULTIMODAL,
    "audio_": MULTIMODAL,
    "ppo_": "PPO",
    "kt_": "KTransformers",
    "vllm_": "vLLM inference",
    "sglang_": "SGLang inference",
    "swanlab_": "SwanLab tracking",
    "freeze_extra_": "freeze tuning of extra modules",
    "loraplus_lr_embedding": "LoRA+ embedding learning rates",
}

# values of our own fields that name a LLaMA-Factory feature this project does not have
FOREIGN_VALUES: dict[tuple[str, str], str] = {
    ("finetuning_type", "oft"): "OFT (orthogonal fine-tuning)",
    ("stage", "ppo"): "PPO",
    ("stage", "kto_pair"): "KTO with pairs",
    ("template", "qwen2_vl"): MULTIMODAL,
    ("template", "qwen3_vl"): MULTIMODAL,
    ("template", "qwen3_vl_nothink"): MULTIMODAL,
    ("template", "moss_vl"): MULTIMODAL,
    ("template", "llava"): MULTIMODAL,
    ("template", "mllama"): MULTIMODAL,
    ("template", "qwen2_omni"): MULTIMODAL,
    ("template", "gemma3n"): MULTIMODAL,
    ("pref_loss", "orpo_mix"): "ORPO mixed with SFT",
}


def _fraction(value, name: str) -> float:
    number = float(value)
    if not 0 <= number < 1:
        raise ValueError(f"'{name}' must be a fraction in [0, 1), got {value!r}")
    return number


def foreign_feature(key: str, value: Any) -> str | None:
    """The name of the unsupported feature a key (or a field's value) asks for, else None."""
    rule = FOREIGN_KEYS.get(key)
    if rule is not None:
        return rule.feature if rule.feature and rule.when(value) else None
    for prefix, feature in FOREIGN_PREFIXES.items():
        if key.startswith(prefix) and key not in FIELDS:
            return feature
    if isinstance(value, str):
        return FOREIGN_VALUES.get((key, value.strip().lower()))
    return None


def translate_foreign_keys(data: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """(data with aliases applied and noted keys removed, notes, problems)."""
    out: dict[str, Any] = {}
    notes, problems, set_by = [], [], {}
    refused: dict[str, list[str]] = {}  # feature → the keys that ask for it
    for key, value in data.items():
        key = str(key)
        feature = foreign_feature(key, value)
        if feature:
            refused.setdefault(feature, []).append(key)
            continue
        rule = FOREIGN_KEYS.get(key)
        if rule is None:
            out[key] = value
            continue
        if rule.field is None:
            if rule.note and rule.when(value):
                notes.append(rule.note)
            continue
        try:
            converted = rule.convert(value)
        except (TypeError, ValueError) as err:
            problems.append(f"'{key}': {err}")
            continue
        if rule.note:
            notes.append(rule.note)
        if converted is None:
            continue
        prior = set_by.get(rule.field)
        if rule.field in data and str(data[rule.field]).strip().lower() != str(converted).lower():
            problems.append(f"'{key}' means {rule.field}: {converted}, but '{rule.field}' is {data[rule.field]!r}")
        elif prior is not None and prior[1] != converted:
            problems.append(f"'{key}' means {rule.field}: {converted}, but '{prior[0]}' means {rule.field}: {prior[1]}")
        else:
            set_by[rule.field] = (key, converted)
            out.setdefault(rule.field, converted)
    for feature, keys in refused.items():
        problems.insert(
            0, f"{feature} is not supported by this project (asked for by {', '.join(repr(k) for k in keys)})"
        )
    if _safe_true(data.get("do_predict")) and "do_train" not in data:
        out["do_train"] = False  # LLaMA-Factory trains only when told to: a predict YAML predicts
    return out, notes, problems


def _safe_true(value) -> bool:
    try:
        return _true(value)
    except ValueError:
        return False


def looks_like_token_file(data: dict[str, Any]) -> bool:
    """LLaMA-Factory's multi-token definition files map new special tokens to descriptions."""
    return bool(data) and all(str(k).startswith("<") and str(k).endswith(">") for k in data)


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


MAX_CONFIG_BYTES = 1024 * 1024  # a run config is a few hundred bytes; anything this big is not one


class _NoAliasLoader(yaml.SafeLoader):
    """safe_load without anchors and aliases: a config never needs them, and a few nested
    aliases expand to gigabytes (the 'billion laughs')."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"aliases (*name) are not allowed in a config (line {event.start_mark.line + 1})")
        return super().compose_node(parent, index)


def read_yaml(path: str | os.PathLike, max_bytes: int = MAX_CONFIG_BYTES):
    """A YAML file's data, within a budget: size-capped, no aliases, no deep nesting.

    Raises ConfigError naming the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise ConfigError([f"config file not found: {path}"]) from None
    if size > max_bytes:
        raise ConfigError(
            [f"the file is {size / 1024 / 1024:.1f} MB; a config may be at most {max_bytes / 1024 / 1024:g} MB"],
            str(path),
        )
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_NoAliasLoader)
    except yaml.YAMLError as err:
        raise ConfigError([f"not valid YAML: {err}"], str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError(["not UTF-8 text"], str(path)) from None
    except RecursionError:
        raise ConfigError(["nested too deeply to read"], str(path)) from None


def load_config(
    path: str | os.PathLike, overrides: list[str] | None = None, notes: list[str] | None = None
) -> RunConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"config file not found: {path}"])
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError([f"expected a mapping of key: value, got {type(data).__name__}"], str(path))
    data.update(parse_overrides(overrides or []))
    return from_dict(data, source=str(path), notes=notes)


# keys of LLaMA-Factory's inference (`chat`) and merge (`export`) YAMLs that this project uses
GENERATION_KEYS = (
    "temperature",
    "top_p",
    "top_k",
    "max_new_tokens",
    "repetition_penalty",
    "default_system",
    "do_sample",
    "num_beams",
    "length_penalty",
    "skip_special_tokens",
)
CHAT_KEYS = (
    "model_name_or_path",
    "adapter_name_or_path",
    "template",
    "trust_remote_code",
    "quantization_bit",
    "enable_thinking",
    "infer_dtype",
    "stage",
    "finetuning_type",
    *GENERATION_KEYS,
)
EXPORT_KEYS = (
    "model_name_or_path",
    "adapter_name_or_path",
    "template",
    "trust_remote_code",
    "export_dir",
    "stage",
    "finetuning_type",
    "enable_thinking",
)


def load_tool_yaml(path: str | os.PathLike, allowed: tuple[str, ...], notes: list[str] | None = None) -> dict[str, Any]:
    """A LLaMA-Factory inference or merge YAML as a dict of the `allowed` keys; keys with a
    note are noted, features this project lacks and unknown keys refused (ConfigError)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"config file not found: {path}"])
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError([f"expected a mapping of key: value, got {type(data).__name__}"], str(path))
    known = {k: v for k, v in data.items() if k in allowed}
    rest, found, problems = translate_foreign_keys({k: v for k, v in data.items() if k not in allowed})
    problems += [unknown_key_message(str(k), allowed) for k in rest if k not in FIELDS]
    found += [f"{k}: a training key, not used here" for k in rest if k in FIELDS]
    if not known.get("model_name_or_path") and not known.get("adapter_name_or_path"):
        problems.append("'model_name_or_path' is missing")
    if problems:
        raise ConfigError(problems, str(path))
    if notes is not None:
        notes.extend(found)
    return known


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


def resolve_logging_steps(cfg: RunConfig) -> int | float:
    """The user's logging_steps, or one that draws about 50 points (at least ~20 on short runs)
    without logging less often than every 10 steps. With epochs instead of max_steps the step
    count is known only to the trainer: a fraction below 1 asks it for 1/50 of all steps."""
    if cfg.logging_steps:
        return cfg.logging_steps
    if cfg.max_steps and cfg.max_steps > 0:
        return max(1, min(10, cfg.max_steps // 50))
    return 0.02
