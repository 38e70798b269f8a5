"""`workbench train CONFIG --check`: what a run would do, without loading weights or starting it.

Prints the resolved config, the chat template in use, the datasets' rows, the method's trainable
parameters (counted on a shape-only model) and the memory estimate; returns 0 when the run could
start and 1 with every reason when it could not.
"""

from __future__ import annotations

from .config import RunConfig, to_yaml


def check_config(cfg: RunConfig, out=print, calibrate: bool = False) -> int:
    problems: list[str] = []
    out("resolved config (differences from the defaults):")
    for line in to_yaml(cfg).splitlines():
        out(f"  {line}")
    problems += _preflight(cfg)
    _processes(cfg, out)
    tokenizer = _tokenizer(cfg, problems)
    if tokenizer is not None:
        _template(cfg, tokenizer, out)
        if not problems:
            _datasets(cfg, out, problems)
    _estimate(cfg, out, problems, calibrate)
    if problems:
        out("check failed:")
        for problem in problems:
            out(f"  - {problem}")
        return 1
    out("check passed: nothing was loaded or started")
    return 0


def _processes(cfg: RunConfig, out) -> None:
    from .distributed import process_count

    count = process_count(cfg)
    out(f"processes: {count}" + (f" ({cfg.distributed_engine})" if count > 1 else ""))
    if count == 1 and cfg.distributed_engine != "ddp":
        out(
            f"note: distributed_engine {cfg.distributed_engine} applies when several processes run "
            f"(nproc_per_node); this run uses one"
        )


def _preflight(cfg: RunConfig) -> list[str]:
    from .preflight import check_run

    return check_run(cfg)


def _tokenizer(cfg: RunConfig, problems: list[str]):
    from .models import ModelError, load_tokenizer

    try:
        return load_tokenizer(cfg.model_name_or_path, cfg.trust_remote_code)
    except (ModelError, OSError, ValueError) as err:
        problems.append(f"model_name_or_path: {err}")
        return None


def _template(cfg: RunConfig, tokenizer, out) -> None:
    from .data.templates import chat_template_for, template_warning

    _, fallback = chat_template_for(tokenizer, cfg.template, cfg.enable_thinking)
    source = "the plain fallback (the tokenizer has none)" if fallback else cfg.template
    out(f"chat template: {source}")
    if warning := template_warning(tokenizer, cfg.template):
        out(f"warning: {warning}")


def _datasets(cfg: RunConfig, out, problems: list[str]) -> None:
    from .data import DataError, load_splits

    try:
        splits = load_splits(cfg)
    except (DataError, ValueError) as err:
        problems.append(f"dataset: {err}")
        return
    counts = splits.counts()
    out(f"rows: train {counts['train']}, validation {counts['validation']}, test {counts['test']}")


def _estimate(cfg: RunConfig, out, problems: list[str], calibrate: bool = False) -> None:
    """Trainable parameters, the compute dtype, and the memory and time estimates (from the
    data's real lengths and the speed measured on this machine)."""
    from .data import DataError
    from .memory import EstimateError, estimate
    from .methods import MethodError
    from .models import ModelError
    from .timing import estimate_lines

    try:
        result = estimate(cfg)
        out(f"trainable parameters: {result.trainable:,} of {result.total:,} ({100 * result.share:.3f}%)")
        for line in estimate_lines(cfg, calibrate):
            out(line)
    except (DataError, EstimateError, MethodError, ModelError, ValueError, OSError) as err:
        problems.append(f"cannot estimate this run: {err}")
