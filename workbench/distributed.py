"""Several processes: the same trainer launched through torchrun, with DDP by default and
DeepSpeed ZeRO-2/3 or FSDP as options (the Trainer's own integrations, not a home-made engine).

The controller asks `launch_prefix` how to start a run; the trainer asks `engine_training_args`
which TrainingArguments the chosen engine needs. On CPU, torchrun runs the processes with gloo.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

from .config import ConfigError, RunConfig

DEEPSPEED_FILE = "deepspeed.json"


def visible_accelerators() -> int:
    """CUDA devices this process may use (0 on a CPU machine); cheap when torch is not loaded."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return 0
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - no usable torch means no accelerator
        return 0


def process_count(cfg: RunConfig) -> int:
    """A configured count wins; otherwise one process per visible accelerator."""
    if cfg.nproc_per_node > 1:
        return cfg.nproc_per_node
    return max(1, visible_accelerators())


def uses_torchrun(cfg: RunConfig) -> bool:
    """Several processes here, or one or more on each of several machines."""
    return process_count(cfg) > 1 or cfg.nnodes > 1


def launch_prefix(nproc: int, cfg: RunConfig | None = None) -> list[str]:
    """The command that starts `-m workbench.train ...` once, or nproc times through torchrun
    (on this machine, or as one node of several when the config says so)."""
    if cfg is not None and cfg.nnodes > 1:
        run = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={cfg.nnodes}", f"--nproc_per_node={nproc}"]
        if cfg.rdzv_backend == "c10d":
            return run + [
                "--rdzv_backend=c10d",
                f"--rdzv_endpoint={cfg.master_addr}:{cfg.master_port}",
                f"--rdzv_id={cfg.rdzv_id}",
            ]
        return run + [
            f"--node_rank={cfg.node_rank}",
            f"--master_addr={cfg.master_addr}",
            f"--master_port={cfg.master_port}",
        ]
    if nproc <= 1:
        return [sys.executable]
    # --standalone: a local rendezvous on a free port, so two runs never collide
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]


def other_node_commands(cfg: RunConfig, config_path: str | Path) -> list[str]:
    """What to type on nodes 1..nnodes-1 (node 0 is the one started here)."""
    import shlex

    return [f"workbench train {shlex.quote(str(config_path))} --set node_rank={rank}" for rank in range(1, cfg.nnodes)]


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def deepspeed_config(stage: int) -> dict:
    """A ZeRO config whose sizes the Trainer fills in ("auto") from its own arguments."""
    zero = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True}
    if stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "zero_optimization": zero,
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
    }


def prepare_engine(cfg: RunConfig, run_dir: str | Path) -> dict:
    """Write the engine's config file (if it has one) and check that it can run here.

    Returns the extra TrainingArguments; raises ConfigError with what is missing and where the
    written config is, so the same run can be started where the engine is installed."""
    engine = cfg.distributed_engine
    if engine.startswith("deepspeed_zero"):
        stage = int(engine[-1])
        path = Path(run_dir) / DEEPSPEED_FILE
        if is_rank_zero():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(deepspeed_config(stage), indent=2), encoding="utf-8")
        problems = []
        if importlib.util.find_spec("deepspeed") is None:
            problems.append("DeepSpeed is not installed (pip install deepspeed)")
        if visible_accelerators() == 0:
            problems.append("DeepSpeed ZeRO needs CUDA GPUs and none is visible")
        if problems:
            raise ConfigError(
                [
                    f"distributed_engine '{engine}': {'; '.join(problems)}. Its config is "
                    f"written to {path}: use distributed_engine ddp here, or run this "
                    f"config where DeepSpeed and GPUs are available"
                ]
            )
        return {"deepspeed": str(path)}
    # accelerate treats several processes as a CPU group only when told it is on CPU
    base = {"use_cpu": True, "ddp_backend": "gloo"} if visible_accelerators() == 0 else {}
    if engine == "fsdp":
        if visible_accelerators() == 0:
            # accelerate shards only across accelerators; on CPU it would quietly run DDP instead
            raise ConfigError(
                ["distributed_engine 'fsdp' needs GPUs and none is visible: use distributed_engine ddp on CPU"]
            )
        # shard parameters, gradients and optimizer state; wrap each transformer block
        return {**base, "fsdp": "full_shard auto_wrap", "fsdp_config": {"use_orig_params": True}}
    return base


def engine_training_args(cfg: RunConfig, run_dir: str | Path) -> dict:
    """TrainingArguments for the engine, when this process is one of several (else none)."""
    if world_size() <= 1:
        return {}
    return prepare_engine(cfg, run_dir)
