"""Measure the real peak memory of a few training configurations and compare it with
workbench.memory's estimate.

    python scripts/measure_memory.py [--steps 2] [--only NAME ...]

Each configuration trains the default model (SmolLM2-135M-Instruct) for a few steps of
continued pretraining with packing, so every batch is exactly batch x cutoff tokens, in a fresh
process; the peak resident set size of that process (ru_maxrss) is its peak. On a CUDA machine
the peak is torch.cuda.max_memory_allocated plus the CUDA context. Results print as a table and
as JSON lines (for tests/test_memory.py)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LONG_PAIRS = "long_pairs"


def write_long_pairs(folder: Path) -> Path:
    """Preference pairs whose prompt + answer pass 512 tokens, so every sequence is cut at the
    cutoff (the shipped preference set is short: its peaks would say little about the estimate,
    which is for full-length sequences)."""
    words = (
        "the quick brown fox jumps over the lazy dog while a careful model learns which answer "
        "people prefer and why training on long pairs fills every position up to the cutoff"
    ).split()
    rows = [
        {
            "prompt": f"Question {i}: " + " ".join(words[(i + j) % len(words)] for j in range(40)),
            "chosen": " ".join(words[(3 * i + j) % len(words)] for j in range(700)),
            "rejected": " ".join(words[(5 * i + j) % len(words)] for j in range(700)),
        }
        for i in range(16)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "long_pairs.json").write_text(json.dumps(rows), encoding="utf-8")
    (folder / "dataset_info.json").write_text(
        json.dumps({LONG_PAIRS: {"file_name": "long_pairs.json", "format": "preference"}}), encoding="utf-8"
    )
    return folder


CONFIGS = {
    "lora-b2-c256": dict(finetuning_type="lora", per_device_train_batch_size=2, cutoff_len=256),
    "lora-b4-c512": dict(finetuning_type="lora", per_device_train_batch_size=4, cutoff_len=512),
    "lora-ckpt-b4-c512": dict(
        finetuning_type="lora", per_device_train_batch_size=4, cutoff_len=512, activation_checkpointing=True
    ),
    "full-b2-c256": dict(finetuning_type="full", per_device_train_batch_size=2, cutoff_len=256),
    "freeze-b2-c256": dict(finetuning_type="freeze", per_device_train_batch_size=2, cutoff_len=256),
    # not used to fit the estimate's terms: an independent check (longer sequences, batch 1)
    "lora-b1-c1024": dict(finetuning_type="lora", per_device_train_batch_size=1, cutoff_len=1024),
    "full-b1-c512": dict(finetuning_type="full", per_device_train_batch_size=1, cutoff_len=512),
    "lora-ckpt-b2-c512": dict(
        finetuning_type="lora", per_device_train_batch_size=2, cutoff_len=512, activation_checkpointing=True
    ),
    "lora-ckpt-b8-c512": dict(
        finetuning_type="lora", per_device_train_batch_size=8, cutoff_len=512, activation_checkpointing=True
    ),
    # DPO (trl's trainer, not our SFT path) on pairs long enough to fill the cutoff
    "dpo-lora-b2-c256": dict(
        stage="dpo",
        packing=False,
        dataset=LONG_PAIRS,
        finetuning_type="lora",
        per_device_train_batch_size=2,
        cutoff_len=256,
    ),
    "dpo-lora-b2-c512": dict(
        stage="dpo",
        packing=False,
        dataset=LONG_PAIRS,
        finetuning_type="lora",
        per_device_train_batch_size=2,
        cutoff_len=512,
    ),
}
# the configurations above compute in fp32 (what they were first measured in); "auto" would
# pick bf16 on CPUs with AMX. These compute in bf16: mixed precision on a CPU (fp32 master
# weights, bf16 products under autocast)
for _keys in CONFIGS.values():
    _keys.setdefault("compute_type", "fp32")
CONFIGS.update(
    {
        "bf16-lora-b2-c256": dict(
            finetuning_type="lora", per_device_train_batch_size=2, cutoff_len=256, compute_type="bf16"
        ),
        "bf16-lora-b4-c512": dict(
            finetuning_type="lora", per_device_train_batch_size=4, cutoff_len=512, compute_type="bf16"
        ),
        "bf16-full-b2-c256": dict(
            finetuning_type="full", per_device_train_batch_size=2, cutoff_len=256, compute_type="bf16"
        ),
        "bf16-qlora-b4-c512": dict(
            finetuning_type="lora",
            quantization_bit=4,
            per_device_train_batch_size=4,
            cutoff_len=512,
            compute_type="bf16",
        ),
    }
)

CHILD = r"""
import json, resource, sys
from workbench.config import from_dict
from workbench.train import run
from workbench import memory
cfg = from_dict(json.loads(sys.argv[1]))
est = memory.estimate(cfg)
run(cfg, sys.argv[2], echo=False)
import torch
if torch.cuda.is_available():
    peak = torch.cuda.max_memory_allocated() + memory.CUDA_OVERHEAD
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print("RESULT " + json.dumps({"peak": peak, "estimate": est.needed, **est.parts()}))
"""


def measure(name: str, keys: dict, steps: int) -> dict:
    from workbench.config import DEFAULT_MODEL

    data = {
        "model_name_or_path": DEFAULT_MODEL,
        "dataset": "identity",
        "dataset_dir": str(ROOT / "workbench" / "data" / "shipped"),
        "stage": "pt",
        "packing": True,
        "max_steps": steps,
        "save_steps": 1000,
        "logging_steps": 1,
        **keys,
    }
    with tempfile.TemporaryDirectory() as tmp:
        if keys.get("dataset") == LONG_PAIRS:
            data["dataset_dir"] = str(write_long_pairs(Path(tmp) / "data"))
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(data), str(Path(tmp) / "run")],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    line = next((out for out in proc.stdout.splitlines() if out.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(line[len("RESULT ") :])
    return {"name": name, "keys": keys, **result, "error": (result["estimate"] - result["peak"]) / result["peak"]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    gib = 1024**3
    print(f"{'config':<20} {'estimate GiB':>12} {'peak GiB':>9} {'error':>7}")
    for name, keys in CONFIGS.items():
        if args.only and name not in args.only:
            continue
        r = measure(name, keys, args.steps)
        print(f"{name:<20} {r['estimate'] / gib:>12.2f} {r['peak'] / gib:>9.2f} {100 * r['error']:>6.0f}%", flush=True)
        print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
