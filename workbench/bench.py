"""`workbench bench`: our training path against trl's SFTTrainer defaults, side by side.

For each method (LoRA, QLoRA-4bit, full) both trainers run the same model on the same tokenized
examples, in the same order, for the same number of optimizer steps, each in a fresh subprocess
(so peak RSS is per method and per path), alternating the order so all see the same machine.

Paths: `ours` (our trainer with compute_type auto: bf16 where this CPU's bf16 products measure
clearly faster, else fp32), `ours-fp32` (the same in fp32, run when auto picked another dtype),
`trl` (`SFTTrainer` with its defaults except fp32: activation checkpointing on, padded batches)
and `trl-defaults` (`SFTTrainer` at its true defaults: bf16=True where the machine supports it,
i.e. a GPU with bf16 or a CPU whose bf16 products measure faster; on a CPU that is mixed
precision through use_cpu=True; fp32 elsewhere, where trl's bf16 would be ~100x slower).

Reported per run: real (non-padding) tokens/s, the dtype it computed in, final loss, peak RSS,
and the share of the roofline of that dtype (fp32 and bf16 matmul peaks, both measured in the
same process right before and after training).

FLOPs counted (per optimizer step, "required work"):
  forward  F = sum over real tokens of 2*P_layers  +  2*P_head per trained (label) token
             + causal attention 2*L*d_attn*len^2 per sequence (QK^T and AV, the causal half)
  full FT  = 3F  (forward, input gradients, weight gradients)
  LoRA     = 2F  (forward, input gradients; frozen weights get no weight gradient; the
                  adapters' own work, r/d of that, is left out), except attention: it has no
                  weights, and the gradients of its inputs q, k, v take two products each for
                  QK^T and AV, so attention counts 3x its forward for every method
P_layers: parameters of the linear layers inside the transformer blocks; P_head: the LM head.
Embedding lookups, norms and activations are not counted. Activation checkpointing's
recomputation and padding are not counted either: they are work, not progress.

Also measured: time from a job's submit (what Start does) to its first logged loss, with the
model cached, and the model load time cold (GGUF -> safetensors cache) and cached.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = ("lora", "qlora", "full")
# the compute_type each path's run is given; "trl-defaults" is trl's bf16=True where supported
PATH_COMPUTE_TYPES = {"ours": "auto", "ours-fp32": "fp32", "trl": "fp32", "trl-defaults": None}


def trl_default_compute_type() -> str:
    """trl's default is bf16=True; the machine supports it on a GPU with bf16 and on a CPU
    with bf16 instructions (AMX or AVX512-BF16). Elsewhere bf16 is emulated, ~100x slower than
    fp32, and nobody would train that way: fp32."""
    import torch

    from .models import device_type

    if device_type() == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_bf16_instructions() else "fp32"


def cpu_has_bf16_instructions() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("amx_bf16", "avx512_bf16"))


ROOT = Path(__file__).resolve().parent.parent


# ---- the fixed benchmark dataset ------------------------------------------------------------
def build_bench_dataset(folder: Path, rows: int = 64) -> Path:
    """A deterministic mixed-length SFT set: conversations of 1..12 turns taken from the
    shipped identity dataset, so lengths spread from ~60 to past 512 tokens."""
    from .data.registry import SHIPPED_DIR

    src = json.loads((SHIPPED_DIR / "identity.json").read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(rows):
        turns = 1 + (i * 7) % 12  # 1, 8, 3, 10, 5, 12, ... : mixed, not sorted
        messages = []
        for t in range(turns):
            qa = src[(i * 5 + t * 3) % len(src)]
            question = (qa["instruction"] + " " + qa.get("input", "")).strip()
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": qa["output"]}]
        records.append({"messages": messages})
    (folder / "bench.json").write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    (folder / "dataset_info.json").write_text(
        json.dumps({"bench": {"file_name": "bench.json", "format": "openai"}}), encoding="utf-8"
    )
    return folder


def bench_config(
    model: str, method: str, steps: int, cutoff: int, dataset_dir: Path, batch_size: int = 4, compute_type: str = "fp32"
):
    from .config import from_dict

    keys = {
        "model_name_or_path": model,
        "dataset": "bench",
        "dataset_dir": str(dataset_dir),
        "cutoff_len": cutoff,
        "max_steps": steps,
        "per_device_train_batch_size": batch_size,
        "learning_rate": 1e-3 if method != "full" else 5e-5,
        "logging_steps": 1,
        "save_steps": 10_000,
        "finetuning_type": "full" if method == "full" else "lora",
        "compute_type": compute_type,
        # trl's default schedule (ours defaults to cosine): the same learning rate at every
        # step is what lets the per-step losses of both paths be compared
        "lr_scheduler_type": "linear",
        "warmup_steps": 0,
    }
    if method == "qlora":
        keys["quantization_bit"] = 4
    return from_dict(keys)


# ---- the machine's roofline -----------------------------------------------------------------
def matmul_gflops(n: int = 1024, seconds: float = 1.0, dtype: str = "fp32") -> float:
    """GFLOP/s of torch.matmul on n x n matrices in `dtype` (fp32/bf16), best of repeated timings."""
    import torch

    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a, b = torch.randn(n, n).to(torch_dtype), torch.randn(n, n).to(torch_dtype)
    torch.matmul(a, b)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(4):
            torch.matmul(a, b)
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def rooflines(seconds: float = 1.0) -> dict:
    """fp32 and bf16 matmul peaks, measured one after the other in this process."""
    return {"fp32": matmul_gflops(seconds=seconds / 2), "bf16": matmul_gflops(seconds=seconds / 2, dtype="bf16")}


# ---- FLOP accounting ------------------------------------------------------------------------
def model_shape(model) -> dict:
    """Linear parameters in the blocks and in the head, layers and attention width."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    layers = head_params = 0
    for name, module in base.named_modules():
        if hasattr(module, "base_layer"):
            continue  # a peft wrapper (its class may be named Linear4bit too): its base counts
        if module is head:
            head_params = module.in_features * module.out_features
        elif isinstance(module, torch.nn.Linear) and "lora_" not in name:
            layers += module.in_features * module.out_features
        elif type(module).__name__ in ("Linear4bit", "Linear8bitLt") and "lora_" not in name:
            layers += module.in_features * module.out_features
    cfg = base.config.get_text_config()
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return {
        "layer_params": layers,
        "head_params": head_params,
        "layers": cfg.num_hidden_layers,
        "attn_width": cfg.num_attention_heads * head_dim,
    }


def forward_flops(shape: dict, lengths: list[int], label_tokens: int) -> tuple[float, float]:
    """(linear layers + head, attention) FLOPs of one forward pass."""
    attention = sum(2 * shape["layers"] * shape["attn_width"] * n * n for n in lengths)
    return 2 * shape["layer_params"] * sum(lengths) + 2 * shape["head_params"] * label_tokens, attention


def step_flops(shape: dict, lengths: list[int], label_tokens: int, method: str) -> float:
    """Forward + backward work one optimizer step requires (see the module docstring)."""
    linear, attention = forward_flops(shape, lengths, label_tokens)
    return linear * (3 if method == "full" else 2) + 3 * attention


# ---- one training run (in a worker subprocess) ----------------------------------------------
class _Counter:
    """Wraps a data collator to record the real tokens of every batch it builds."""

    def __init__(self, collator):
        self.collator = collator
        self.batches: list[dict] = []

    def __call__(self, features):
        lengths = [len(f["input_ids"]) for f in features]
        labels = sum(sum(1 for x in f["labels"][1:] if x != -100) for f in features)
        self.batches.append({"lengths": lengths, "labels": labels})
        return self.collator(features)


def _trl_default_trainer(cfg, model, tokenizer, examples, output_dir: str, dtype):
    """SFTTrainer with trl's defaults in `dtype` (fp32, or bf16 as trl defaults to: on a CPU
    that needs use_cpu=True, which makes it mixed precision), with the same steps, batch size,
    learning rate, seed and max length as our run."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from . import models

    args = SFTConfig(
        output_dir=output_dir,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        seed=cfg.seed,
        max_length=cfg.cutoff_len,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        use_cpu=dtype == torch.bfloat16 and models.device_type() == "cpu",
    )
    return SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples), processing_class=tokenizer)


def run_worker(spec: dict) -> dict:
    """Train once as `spec` says; return the measurements."""
    import psutil
    import torch
    from transformers import PrinterCallback, TrainerCallback, set_seed

    from . import data, methods, models, stages

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    torch.manual_seed(0)
    cfg = bench_config(
        spec["model"],
        spec["method"],
        spec["steps"],
        spec["cutoff"],
        Path(spec["dataset_dir"]),
        spec.get("batch_size", 4),
        PATH_COMPUTE_TYPES[spec["path"]] or trl_default_compute_type(),
    )
    cfg.torch_compile = bool(spec.get("torch_compile"))
    set_seed(cfg.seed)
    roof_before = rooflines()
    t0 = time.perf_counter()
    tokenizer = models.load_tokenizer(cfg.model_name_or_path)
    examples, stats = data.tokenize_rows(tokenizer, data.load_splits(cfg).train, cfg)
    t_data = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = models.load_causal_lm(
        cfg.model_name_or_path,
        cfg.compute_type,
        cfg.quantization_bit,
        cfg.quantization_type,
        cfg.double_quantization,
        training=True,
    )
    t_load = time.perf_counter() - t0
    dtype = models.compute_dtype_for_model(cfg.compute_type, cfg.model_name_or_path)
    model = methods.apply_method(model, cfg)
    shape = model_shape(model)
    with tempfile.TemporaryDirectory(prefix="bench-") as out:
        if spec["path"].startswith("ours"):
            trainer = stages.build_trainer(cfg, model, tokenizer, examples, [], out, dtype, [])
        else:
            trainer = _trl_default_trainer(cfg, model, tokenizer, examples, out, dtype)
        setup = {
            "activation_checkpointing": bool(trainer.args.activation_checkpointing),
            "padding_free": bool(getattr(trainer, "padding_free", False)),
            "attention": getattr(model.config, "_attn_implementation", None),
            "dtype": str(dtype).replace("torch.", ""),
        }
        counter = _Counter(trainer.data_collator)
        trainer.data_collator = counter
        steps: list[dict] = []

        class Timer(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                self.counter = _matmul_counter() if spec.get("count_flops") else None
                self.t, self.cpu = time.perf_counter(), time.process_time()

            def on_step_end(self, args, state, control, **kw):
                # CPU seconds beside wall seconds: on a machine shared with other programs the
                # wall clock counts their time too, the process's CPU time does not
                steps.append({"seconds": time.perf_counter() - self.t, "cpu_seconds": time.process_time() - self.cpu})
                if self.counter is not None:
                    self.counter.__exit__(None, None, None)
                    steps[-1]["executed_flops"] = self.counter.get_total_flops()

            def on_log(self, args, state, control, logs=None, **kw):
                if logs and "loss" in logs and steps:
                    steps[-1]["loss"] = logs["loss"]

        trainer.add_callback(Timer())
        trainer.remove_callback(PrinterCallback)  # stdout carries only the result line
        t0 = time.perf_counter()
        trainer.train()
        t_train = time.perf_counter() - t0
    roof_after = rooflines()
    batches = counter.batches[: len(steps)]
    for step, batch in zip(steps, batches):
        step["tokens"] = sum(batch["lengths"])
        step["padded"] = max(batch["lengths"]) * len(batch["lengths"])
        step["flops"] = step_flops(shape, batch["lengths"], batch["labels"], spec["method"])
    steady = steps[1:] or steps  # the first step pays one-off allocation and warm-up costs
    seconds = sum(s["seconds"] for s in steady)
    cpu_seconds = sum(s["cpu_seconds"] for s in steady)
    tokens = sum(s["tokens"] for s in steady)
    flops = sum(s["flops"] for s in steady)
    # the roofline of the dtype this path computed in; both are reported
    both = {k: (roof_before[k] + roof_after[k]) / 2 for k in roof_before}
    roof = both["bf16" if dtype == torch.bfloat16 else "fp32"]
    return {
        "method": spec["method"],
        "steps": len(steps),
        "dtype": setup["dtype"],
        "rooflines_gflops": both,
        "load_avg": os.getloadavg(),
        "path": spec["path"] + ("+compile" if cfg.torch_compile else ""),
        "real_tokens": sum(s["tokens"] for s in steps),
        "padded_tokens": sum(s["padded"] for s in steps),
        "tokens_per_s": tokens / seconds if seconds else 0.0,
        "tokens_per_cpu_s": tokens / cpu_seconds if cpu_seconds else 0.0,
        "threads": torch.get_num_threads(),
        "gflops": flops / seconds / 1e9 if seconds else 0.0,
        "roofline_gflops": roof,
        "roofline_fraction": flops / seconds / 1e9 / roof if seconds else 0.0,
        "losses": [s.get("loss") for s in steps],
        "step_seconds": [round(s["seconds"], 3) for s in steps],
        "step_cpu_seconds": [round(s["cpu_seconds"], 3) for s in steps],
        "executed_flops": [s["executed_flops"] for s in steps] if spec.get("count_flops") else None,
        "required_flops": [s["flops"] for s in steps],
        "final_loss": steps[-1].get("loss") if steps else None,
        "train_seconds": t_train,
        "data_seconds": t_data,
        "load_seconds": t_load,
        "peak_rss_mb": psutil.Process().memory_info().rss / 2**20 if sys.platform != "linux" else _peak_rss_mb(),
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "setup": setup,
        "examples": stats.summary(),
    }


def _matmul_counter():
    """Counts the FLOPs of the matrix products actually run (torch's FlopCounterMode: mm,
    addmm, addmm_, bmm...; CPU attention kernels have no formula and are not counted), so the
    work each path does per step can be compared without timing anything."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    def addmm_in_place(_acc, mat1, mat2, *args, out_shape=None, **kwargs):
        return 2 * mat1[0] * mat1[1] * mat2[1]  # shapes arrive as sizes

    # in-place addmm_ (trl's head and ours accumulate with it) has no formula of its own
    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.addmm_: addmm_in_place})
    counter.__enter__()
    return counter


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _spawn_worker(spec: dict, timeout: float = 3600) -> dict:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "workbench.bench", "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    path = spec["path"] + ("+compile" if spec.get("torch_compile") else "")
    return {"method": spec["method"], "path": path, "error": " | ".join(tail)}


# ---- Start -> first loss, and model load times -----------------------------------------------
def time_to_first_loss(model: str, dataset_dir: Path, cutoff: int, timeout: float = 600) -> dict:
    """Submit a LoRA job the way the Start button does; seconds until its first logged loss."""
    from .jobs import JobController

    with tempfile.TemporaryDirectory(prefix="bench-saves-") as saves:
        cfg = bench_config(model, "lora", 3, cutoff, dataset_dir)
        controller = JobController(saves)
        t0 = time.time()
        run_id = controller.submit(cfg)
        events = Path(saves) / run_id / "events.jsonl"
        first, phases = None, {}
        try:
            while time.time() - t0 < timeout and first is None:
                controller.tick()
                for event in _read_events(events):
                    if event.get("type") == "phase":
                        phases.setdefault(event.get("phase"), round(event["time"] - t0, 2))
                    elif event.get("type") == "log" and "loss" in event:
                        first = event["time"] - t0
                        break
                    elif event.get("type") == "error":
                        return {"error": event.get("message")}
                time.sleep(0.1)
        finally:
            controller.abort(run_id)  # the first loss is all this measures
            controller.wait(run_id, timeout=timeout)
        # when each phase began, in seconds after submit: where the time before the first loss goes
        return {"seconds": first, "phase_started": phases}


def _read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # a line being written
    return events


def model_load_times(model: str) -> dict:
    """Cold: GGUF -> safetensors cache in an empty cache folder; cached: a load from it."""
    # the first load in a process also pays transformers' lazy imports; the second does not
    code = (
        "import time,sys;from workbench import models;t=time.perf_counter();"
        "models.load_causal_lm(sys.argv[1]);t2=time.perf_counter();"
        "models.load_causal_lm(sys.argv[1]);print(t2-t,time.perf_counter()-t2)"
    )
    out = {}
    from .models import KNOWN_MODELS

    if KNOWN_MODELS.get(model) and KNOWN_MODELS[model].gguf_package:
        with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
            env = {**os.environ, "WORKBENCH_CACHE": cache}
            proc = subprocess.run(
                [sys.executable, "-c", code, model], capture_output=True, text=True, env=env, timeout=900
            )
            out["cold_seconds"] = float(proc.stdout.split()[-2]) if proc.returncode == 0 else None
    proc = subprocess.run([sys.executable, "-c", code, model], capture_output=True, text=True, timeout=900)
    if proc.returncode == 0:
        first, again = (float(x) for x in proc.stdout.split()[-2:])
        out.update(cached_seconds=first, cached_again_seconds=again)
    return out


# ---- the whole benchmark --------------------------------------------------------------------
def _loss_gap(a: dict, b: dict) -> float | None:
    """Largest relative difference of two runs' per-step losses (b the reference)."""
    pairs = [(x, y) for x, y in zip(a["losses"], b["losses"]) if None not in (x, y)]
    return max((abs(x - y) / abs(y) for x, y in pairs if y), default=None)


def loss_tolerance(a: dict, b: dict) -> float:
    return 1e-4 if a.get("dtype") == b.get("dtype") == "float32" else 1e-2


def summarize(results: list[dict]) -> dict:
    """Per method: ours against trl in fp32 (`speedup`), against trl at its true defaults
    (`speedup_vs_trl_defaults`) and against our own path in fp32 (`speedup_vs_fp32`, when auto
    picked another dtype), with the per-step loss gaps that show the same learning."""
    out = {}
    for method in METHODS:

        def run_of(path, method=method):
            found = [r for r in results if r["method"] == method and r["path"] == path and "error" not in r]
            return found[0] if found else None

        o, t = run_of("ours"), run_of("trl")
        if not o or not t:
            continue
        defaults = run_of("trl-defaults") or t  # trl's defaults are fp32 where bf16 is not supported
        fp32 = run_of("ours-fp32")
        compiled = run_of("ours+compile")
        diff = abs(o["final_loss"] - t["final_loss"]) if None not in (o["final_loss"], t["final_loss"]) else None

        def ratio(a, b):
            return a["tokens_per_s"] / b["tokens_per_s"] if b["tokens_per_s"] else None

        def cpu_ratio(a, b):
            return a["tokens_per_cpu_s"] / b["tokens_per_cpu_s"] if b.get("tokens_per_cpu_s") else None

        out[method] = {
            "speedup": ratio(o, t),
            "speedup_vs_trl_defaults": ratio(o, defaults),
            # the same ratios by CPU time (real tokens per CPU second): what a busy
            # machine leaves meaningful, best at --threads 1
            "speedup_cpu": cpu_ratio(o, t),
            "speedup_vs_trl_defaults_cpu": cpu_ratio(o, defaults),
            "ours_dtype": o.get("dtype"),
            "trl_defaults_dtype": defaults.get("dtype"),
            "ours_tokens_per_s": o["tokens_per_s"],
            "trl_tokens_per_s": t["tokens_per_s"],
            "trl_defaults_tokens_per_s": defaults["tokens_per_s"],
            "ours_roofline_fraction": o["roofline_fraction"],
            "trl_roofline_fraction": t["roofline_fraction"],
            "trl_defaults_roofline_fraction": defaults["roofline_fraction"],
            "same_real_tokens": o["real_tokens"] == t["real_tokens"],
            "final_loss_ours": o["final_loss"],
            "final_loss_trl": t["final_loss"],
            "final_loss_diff": diff,
            "max_step_loss_rel_diff": _loss_gap(o, t),
            # the same tokens give the same loss: to float noise when both run fp32,
            # within 1% when one computes in bf16 (8 significant bits)
            "loss_tolerance": loss_tolerance(o, t),
            "losses_match": (_loss_gap(o, t) or 0.0) <= loss_tolerance(o, t),
            "trl_defaults_max_step_loss_rel_diff": _loss_gap(defaults, t),
            "ours_peak_rss_mb": o["peak_rss_mb"],
            "trl_peak_rss_mb": t["peak_rss_mb"],
            "trl_defaults_peak_rss_mb": defaults["peak_rss_mb"],
        }
        if fp32:
            out[method].update(
                speedup_vs_fp32=ratio(o, fp32),
                speedup_vs_fp32_cpu=cpu_ratio(o, fp32),
                ours_fp32_tokens_per_s=fp32["tokens_per_s"],
                ours_fp32_roofline_fraction=fp32["roofline_fraction"],
                max_step_loss_rel_diff_vs_fp32=_loss_gap(o, fp32),
                losses_match_fp32=(_loss_gap(o, fp32) or 0.0) <= loss_tolerance(o, fp32),
                ours_fp32_peak_rss_mb=fp32["peak_rss_mb"],
            )
        if compiled and o["tokens_per_s"]:
            out[method]["compile_speedup"] = compiled["tokens_per_s"] / o["tokens_per_s"]
    return out


def bench_paths(model_path: str) -> list[str]:
    """The paths to run: ours and trl in fp32 always; trl at its true defaults when those are
    not fp32; our path in fp32 too when auto picks another dtype."""
    import torch

    from .models import compute_dtype_for_model

    paths = ["ours", "trl"]
    if trl_default_compute_type() != "fp32":
        paths.append("trl-defaults")
    if compute_dtype_for_model("auto", model_path) != torch.float32:
        paths.append("ours-fp32")
    return paths


def machine() -> dict:
    import platform

    import torch

    info = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_avg": os.getloadavg(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def run_bench(
    model: str,
    methods: list[str],
    steps: int,
    cutoff: int,
    rows: int,
    extras: bool = True,
    echo=print,
    compile_too: bool = False,
    threads: int | None = None,
) -> dict:
    from .models import resolve_model_path

    model_path = resolve_model_path(model)  # converts the embedded model once, before timing
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        dataset_dir = build_bench_dataset(Path(tmp), rows)
        results = []
        paths = bench_paths(model_path)
        for i, method in enumerate(methods):
            order = paths if i % 2 == 0 else paths[::-1]  # alternate who goes first
            for path in order:
                spec = {
                    "model": model_path,
                    "method": method,
                    "path": path,
                    "steps": steps,
                    "cutoff": cutoff,
                    "dataset_dir": str(dataset_dir),
                    "threads": threads,
                }
                result = _spawn_worker(spec)
                results.append(result)
                echo(_line(result))
            if compile_too:  # our path once more with torch.compile, after both
                result = _spawn_worker({**spec, "path": "ours", "torch_compile": True})
                results.append(result)
                echo(_line(result))
        summary = {
            "model": model,
            "steps": steps,
            "cutoff": cutoff,
            "machine": machine(),
            "methods": summarize(results),
            "runs": results,
        }
        if extras:
            summary["first_loss_after_start"] = time_to_first_loss(model_path, dataset_dir, cutoff)
            summary["model_load"] = model_load_times(model)
    return summary


def _line(r: dict) -> str:
    if "error" in r:
        return f"{r['method']:>5} {r['path']:>12}: error {r['error']}"
    return (
        f"{r['method']:>5} {r['path']:>12} ({r['dtype']}): {r['tokens_per_s']:7.1f} real tokens/s "
        f"({r['tokens_per_cpu_s']:.1f} per CPU second, load {r['load_avg'][0]:.1f}), "
        f"{100 * r['roofline_fraction']:5.1f}% of {r['roofline_gflops']:.0f} GFLOP/s, "
        f"final loss {r['final_loss']}, peak RSS {r['peak_rss_mb']:.0f} MiB"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="model name or folder (default: the default model); 'tiny' builds a tiny random model for a quick check",
    )
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated: lora,qlora,full")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per run")
    parser.add_argument("--cutoff", type=int, default=512)
    parser.add_argument("--rows", type=int, default=64, help="conversations in the bench set")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also run our path with torch_compile: true (steps 2..N; the first step pays the compilation)",
    )
    parser.add_argument("--no-extras", action="store_true", help="skip the Start-to-first-loss and model-load timings")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per run (default: torch's); 1 makes the CPU-time ratios "
        "robust on a machine other programs load",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)


def run_from_args(args) -> int:
    if args.worker:
        import warnings

        warnings.filterwarnings("ignore")
        print(json.dumps(run_worker(json.loads(args.worker))), flush=True)
        return 0
    from .config import DEFAULT_MODEL

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        print(
            f"error: --methods: unknown {', '.join(bad) or '(none given)'} (choose from {', '.join(METHODS)})",
            file=sys.stderr,
        )
        return 2
    model = args.model or DEFAULT_MODEL
    with tempfile.TemporaryDirectory(prefix="bench-tiny-") as tmp:
        if model == "tiny":
            model = str(build_tiny_model(Path(tmp)))
        summary = run_bench(
            model,
            methods,
            args.steps,
            args.cutoff,
            args.rows,
            extras=not args.no_extras,
            compile_too=args.compile,
            threads=args.threads,
            echo=lambda s: print(s, file=sys.stderr, flush=True),
        )
    for method, m in summary["methods"].items():
        line = (
            f"{method}: ours ({m['ours_dtype']})/trl fp32 {m['speedup']:.2f}x real tokens/s, "
            f"/trl defaults ({m['trl_defaults_dtype']}) {m['speedup_vs_trl_defaults']:.2f}x"
        )
        if "speedup_vs_fp32" in m:
            line += (
                f", /ours fp32 {m['speedup_vs_fp32']:.2f}x (per-step losses within "
                f"{100 * (m['max_step_loss_rel_diff_vs_fp32'] or 0):.3f}% of fp32)"
            )
        print(
            line + f"; final loss {m['final_loss_ours']:.4f} vs trl {m['final_loss_trl']:.4f} (largest "
            f"per-step difference {100 * (m['max_step_loss_rel_diff'] or 0):.4f}%)",
            file=sys.stderr,
        )
    print(json.dumps(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbench bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


def build_tiny_model(folder: Path, hidden: int = 64, layers: int = 2) -> Path:
    """A small random llama with the default model's tokenizer (as the tests use)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from .config import DEFAULT_MODEL
    from .models import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(DEFAULT_MODEL))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


if __name__ == "__main__":
    sys.exit(main())
