"""The only place that trains: `python -m workbench.train CONFIG.yaml [--set key=value ...]`.

Loads data, model and method, runs the stage's transformers/trl trainer, and writes
events.jsonl, checkpoints, and the final result (adapter or model) into the run folder:

  <run>/config.yaml  events.jsonl  train.log  checkpoint-N/  final/
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import traceback
import warnings
from pathlib import Path

from .config import ConfigError, RunConfig, load_config, save_config
from .events import EventWriter
from .locale import Message
from .runs import (
    EVENTS_FILE,
    FINAL_DIR,
    INCOMPLETE_PREFIX,
    STATE_FILE,
    STOP_FILE,
    checkpoint_step,
    choose_run_dir,
    complete_checkpoints,
)


class Aborted(Exception):
    """SIGTERM arrived, or a stop was asked for before training began: end now, saying so in
    events.jsonl."""


def set_aside_incomplete(run_dir: Path) -> list[Path]:
    """Rename checkpoints that were killed mid-save (no trainer state) so that neither a resume
    nor the Trainer's checkpoint rotation ever picks them; they stay on disk for inspection."""
    moved = []
    for path in sorted(run_dir.glob("checkpoint-*")):
        if checkpoint_step(path.name) is not None and path.is_dir() and not (path / STATE_FILE).is_file():
            target = run_dir / f"{INCOMPLETE_PREFIX}{path.name}"
            n = 2
            while target.exists():
                target, n = run_dir / f"{INCOMPLETE_PREFIX}{path.name}-{n}", n + 1
            os.replace(path, target)
            moved.append(target)
    return moved


def resolve_resume(cfg: RunConfig, run_dir: Path) -> str | None:
    spec = cfg.resume_from_checkpoint
    if not spec:
        return None
    if spec in ("last", "true", "True"):
        if int(os.environ.get("RANK", "0")) == 0:
            for path in set_aside_incomplete(run_dir):
                print(f"resume: set aside {path.name} (no {STATE_FILE}: it was not saved completely)", flush=True)
        checkpoints = complete_checkpoints(run_dir)
        if not checkpoints:
            raise ConfigError([f"resume_from_checkpoint: {run_dir} has no complete checkpoint"])
        return str(checkpoints[-1])
    path = Path(spec)
    if not (path / STATE_FILE).is_file():
        raise ConfigError([f"resume_from_checkpoint: {path} is not a complete checkpoint (no {STATE_FILE})"])
    return str(path)


def _on_sigterm(signum, frame):
    raise Aborted("aborted: the process was terminated")


def check_stop(run_dir: Path, phase: str) -> None:
    """An abort asked for before training began ends the run at once: there is nothing to save."""

    if (run_dir / STOP_FILE).exists():
        raise Aborted(f"aborted while {phase.replace('_', ' ')}: training had not started, nothing was saved")


def run(cfg: RunConfig, run_dir: Path | None = None, echo: bool = True) -> Path:
    """Train as the config says; return the folder of the final result."""
    import datasets
    import torch
    from transformers import PrinterCallback, set_seed

    from . import data, distributed, methods, models, stages
    from .callbacks import EventsCallback, StopFileCallback
    from .data.cache import tokenize_rows_cached
    from .monitor import HardwareMonitor

    datasets.disable_progress_bars()  # carriage-return bars garble train.log
    run_dir = Path(run_dir or choose_run_dir(cfg))
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.output_dir = str(run_dir)
    if not cfg.resume_from_checkpoint:  # a resumed run keeps its config as it was
        save_config(cfg, run_dir / "config.yaml")
    rank0 = int(os.environ.get("RANK", "0")) == 0
    writer = EventWriter(run_dir, enabled=rank0)
    writer.emit("phase", phase="preparing_data", pid=os.getpid())
    set_seed(cfg.seed)

    tokenizer = models.load_tokenizer(cfg.model_name_or_path, cfg.trust_remote_code)
    if warning := data.templates.template_warning(tokenizer, cfg.template):
        print(f"warning: {warning}", flush=True)
    splits = data.load_splits(cfg)
    # remembered by their inputs: a second Start with the same data skips tokenizing
    train_examples, train_stats, _ = tokenize_rows_cached(tokenizer, splits.train, cfg)
    eval_examples, _, _ = tokenize_rows_cached(tokenizer, splits.validation, cfg)
    if not train_examples:
        raise data.DataError(
            f"no training example is left: all {train_stats.rows} rows were "
            f"dropped (cutoff_len {cfg.cutoff_len} leaves no reply tokens)"
        )
    writer.emit("data", splits=splits.counts(), **train_stats.summary())
    if train_stats.dropped or train_stats.truncated:
        print(
            f"data: {train_stats.truncated} rows truncated at cutoff_len {cfg.cutoff_len}, "
            f"{train_stats.dropped} dropped (no reply tokens left)",
            flush=True,
        )

    check_stop(run_dir, "preparing_data")
    writer.emit("phase", phase="loading_model")
    if cfg.stage == "cls":  # a classification head sized from the data's labels
        from . import classify

        model = classify.load_model(cfg, tokenizer, train_examples, run_dir)
    else:
        model = models.load_causal_lm(
            cfg.model_name_or_path,
            cfg.compute_type,
            cfg.quantization_bit,
            cfg.quantization_type,
            cfg.double_quantization,
            training=True,
            trust_remote_code=cfg.trust_remote_code,
            **stages.model_load_kwargs(cfg),
        )
    dtype = models.compute_dtype_for_model(cfg.compute_type, cfg.model_name_or_path)
    model = methods.apply_method(model, cfg)
    methods.before_training(model, cfg, run_dir)
    summary = methods.count_parameters(model)
    writer.emit(
        "model",
        trainable=summary.trainable,
        total=summary.total,
        dtype=str(dtype).replace("torch.", ""),
        device=models.device_type(),
    )
    print(f"model: {cfg.model_name_or_path}, {cfg.finetuning_type}: {summary}", flush=True)
    if distributed.world_size() > 1:
        print(
            f"process {os.environ.get('RANK', '0')} of {distributed.world_size()} ({cfg.distributed_engine})",
            flush=True,
        )

    callbacks = [EventsCallback(writer, echo), StopFileCallback(run_dir, writer)]
    # trackers read their environment when the trainer is built and when training begins
    with _environment(stages.tracking_environment(cfg, run_dir)):
        trainer = stages.build_trainer(
            cfg, model, tokenizer, train_examples, eval_examples, str(run_dir), dtype, callbacks
        )
        trainer.remove_callback(PrinterCallback)  # EventsCallback prints a tidier line
        methods.configure_optimizer(trainer, cfg)  # layer-wise LR decay, LoRA+
        resume = resolve_resume(cfg, run_dir)
        check_stop(run_dir, "loading_model")
        writer.emit("phase", phase="training")
        with HardwareMonitor(writer, run_dir.parent):  # live figures for the Train tab
            trainer.train(resume_from_checkpoint=resume)
    if rank0:  # the speed its steps reached: what the next run's time estimate starts from
        from .timing import record_run

        record_run(cfg, dtype, run_dir / EVENTS_FILE)

    writer.emit("phase", phase="saving")
    final = run_dir / FINAL_DIR
    save_final(trainer, tokenizer, final, cfg)
    if cfg.do_predict and rank0 and not callbacks[1].stopped:
        writer.emit("phase", phase="predicting")
        predict(cfg, run_dir, trained=True)
    ended = why_it_ended(trainer, cfg, callbacks[1].stopped)
    writer.emit("end", final=FINAL_DIR, stopped=callbacks[1].stopped, **ended)
    best = (
        f"; best checkpoint {ended['best_checkpoint']} ({cfg.metric_for_best_model} "
        f"{ended['best_metric']:.4g}{', kept as final/' if ended['final_is_best'] else ''})"
        if ended.get("best_checkpoint")
        else ""
    )
    print(f"ended: {ended['reason']}{best}", flush=True)
    del trainer, model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return final


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """Set environment variables for a while (in-process runs must not leak them to the next)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def why_it_ended(trainer, cfg: RunConfig, stop_requested: bool) -> dict:
    """The end event's account: why training stopped, and which checkpoint validated best."""
    from transformers import EarlyStoppingCallback

    state = trainer.state
    out: dict = {}
    if state.best_model_checkpoint:
        out.update(
            best_checkpoint=Path(state.best_model_checkpoint).name,
            best_metric=state.best_metric,
            metric_for_best_model=cfg.metric_for_best_model,
            final_is_best=bool(cfg.load_best_model_at_end),
        )
    early = [c for c in trainer.callback_handler.callbacks if isinstance(c, EarlyStoppingCallback)]
    if stop_requested:
        reason = Message("reason.stopped")
    elif early and early[0].early_stopping_patience_counter >= early[0].early_stopping_patience:
        reason = Message(
            "reason.early_stopping",
            metric=cfg.metric_for_best_model,
            threshold=f"{cfg.early_stopping_threshold:g}",
            patience=cfg.early_stopping_patience,
            step=state.global_step,
            max_steps=state.max_steps,
        )
    else:
        reason = Message("reason.all_steps", max_steps=state.max_steps)
    out["reason"], out["reason_data"] = reason, reason.to_data()  # the key: the page shows it in its language
    return out


def save_final(trainer, tokenizer, final: Path, cfg: RunConfig | None = None) -> None:
    """Save the adapter or model into a temp folder, then swap it in whole."""
    from . import methods

    tmp = final.parent / f".{final.name}.tmp"
    if trainer.is_world_process_zero():
        shutil.rmtree(tmp, ignore_errors=True)
    # every rank takes part (DeepSpeed/FSDP gather the weights); only rank 0 writes files
    trainer.save_model(str(tmp))
    if not trainer.is_world_process_zero():
        return
    if cfg is not None:
        methods.after_save(trainer.model, cfg, tmp, final.parent)  # e.g. PiSSA → plain LoRA
    tokenizer.save_pretrained(str(tmp))
    # the Trainer also writes its training_args.bin; the result folder needs only the model
    (tmp / "training_args.bin").unlink(missing_ok=True)
    old = final.parent / f".{final.name}.old"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def readable_error(err: BaseException) -> str:
    """One line a user can act on."""
    text = str(err).strip()
    if isinstance(err, MemoryError) or "out of memory" in text.lower():
        return f"out of memory: {text.splitlines()[0] if text else 'the device ran out of memory'}"
    if isinstance(err, ConfigError):
        return "; ".join(err.problems)
    first = text.splitlines()[0] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _check_before_run(cfg: RunConfig, debug: bool = False) -> list[str]:
    """The pre-run check's problems; a crash of the check itself is one more problem."""
    from .preflight import check_run, notes

    try:
        problems = check_run(cfg)
    except Exception as err:  # noqa: BLE001 - the check must never be the traceback it prevents
        if debug:
            traceback.print_exc()
        return [f"the pre-run check failed: {readable_error(err)}"]
    for note in notes(cfg) if not problems else []:
        print(f"note: {note}", flush=True)
    return problems


def prepare_data_only(cfg: RunConfig) -> Path:
    """tokenized_path: tokenize the training (and validation) rows, save them with datasets'
    save_to_disk, and stop before any model is loaded."""
    import datasets

    from . import data, models
    from .data.cache import tokenize_rows_cached

    datasets.disable_progress_bars()
    tokenizer = models.load_tokenizer(cfg.model_name_or_path, cfg.trust_remote_code)
    splits = data.load_splits(cfg)
    target = Path(cfg.tokenized_path)
    parts = {}
    for name, rows in (("train", splits.train), ("validation", splits.validation)):
        if rows:
            examples, stats, _ = tokenize_rows_cached(tokenizer, rows, cfg)
            parts[name] = datasets.Dataset.from_list(examples)
            print(
                f"data: {name}: {stats.rows} rows, {stats.tokens} tokens, {stats.truncated} truncated, "
                f"{stats.dropped} dropped",
                flush=True,
            )
    tmp = target.parent / f".{target.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    datasets.DatasetDict(parts).save_to_disk(str(tmp))
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target


PREDICTIONS_FILE = "generated_predictions.jsonl"  # LLaMA-Factory's names, so its scripts find them
PREDICT_RESULTS = "predict_results.json"


def predict(cfg: RunConfig, run_dir: Path, trained: bool) -> Path:
    """do_predict: score the trained result (or, without training, the base with
    adapter_name_or_path) on eval_dataset (else the test, else the validation split): loss,
    and with predict_with_generate the generated replies and their BLEU/ROUGE."""
    import copy
    import json

    from .chat import BASE_PREFIX, Target, folder_target
    from .config import atomic_write_text
    from .evaluate import Evaluator, evaluate

    if trained:
        target = folder_target(run_dir / FINAL_DIR, cfg.model_name_or_path, cfg.template)
    elif cfg.adapter_name_or_path:
        from .methods import adapter_folder

        target = folder_target(adapter_folder(cfg.adapter_name_or_path), cfg.model_name_or_path, cfg.template)
    else:
        target = Target(BASE_PREFIX + cfg.model_name_or_path, cfg.model_name_or_path, template=cfg.template)
    rows_cfg, split = copy.copy(cfg), "test" if cfg.test_size else "validation"
    if cfg.eval_dataset:  # every row of the named datasets
        rows_cfg.dataset, rows_cfg.val_size, rows_cfg.test_size, split = cfg.eval_dataset, 0.0, 0.0, "train"
    evaluator = Evaluator(root=run_dir.parent, batch_size=cfg.per_device_eval_batch_size, cutoff_len=cfg.cutoff_len)
    evaluator.target = lambda spec: target  # one target, not looked up by name
    print(f"predict: {target.label} on {rows_cfg.dataset} ({split})", flush=True)
    result = evaluate(target.label, split=split, evaluator=evaluator, cfg=rows_cfg, save=False, with_loss=True)
    metrics = (
        result.metrics
        if cfg.predict_with_generate
        else {k: v for k, v in result.metrics.items() if k in ("loss", "perplexity")}
    )
    if cfg.predict_with_generate:
        lines = "".join(
            json.dumps(
                {"prompt": row["prompt"], "predict": row["prediction"], "label": row["reference"]}, ensure_ascii=False
            )
            + "\n"
            for row in result.predictions
        )
        atomic_write_text(run_dir / PREDICTIONS_FILE, lines)
    atomic_write_text(
        run_dir / PREDICT_RESULTS, json.dumps({"rows": result.rows, **metrics}, ensure_ascii=False, indent=2) + "\n"
    )
    print(
        "predict: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float))), flush=True
    )
    return run_dir / PREDICT_RESULTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbench train", description="Train as a config says.")
    parser.add_argument("config", help="a YAML run config (LLaMA-Factory's training YAMLs too)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key (repeatable)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate and print the resolved config, trainable parameters, "
        "compute dtype and memory and time estimates; load no weights, start nothing",
    )
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="with --check: measure this run's speed with a few steps when none is known",
    )
    parser.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)  # used by the job controller
    parser.add_argument("--debug", action="store_true", help="print the traceback of a failure")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    # deprecation notices from inside transformers/trl/peft only clutter the run's log
    warnings.filterwarnings("ignore", category=FutureWarning)
    notes: list[str] = []
    try:
        cfg = load_config(args.config, args.overrides, notes)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1 if args.check else 2
    for note in dict.fromkeys(notes):  # once each
        print(f"note: {note}", flush=True)
    if args.check:
        from .check import check_config

        return check_config(cfg, calibrate=args.calibrate)
    if args.run_dir is None:  # a run given a folder was checked by whoever made that folder
        problems = _check_before_run(cfg, args.debug)
        if problems:
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            return 1
    if cfg.tokenized_path:
        try:
            print(f"done: tokenized data in {prepare_data_only(cfg)} (nothing trained)", flush=True)
            return 0
        except Exception as err:  # noqa: BLE001 - a data problem is reported, not raised
            print(f"error: {readable_error(err)}", file=sys.stderr)
            return 1
    run_dir = Path(args.run_dir) if args.run_dir else choose_run_dir(cfg)
    if not cfg.do_train:  # predict only
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, run_dir / "config.yaml")
            print(f"done: predictions in {predict(cfg, run_dir, trained=False).parent}", flush=True)
            return 0
        except Exception as err:  # noqa: BLE001 - one readable line
            traceback.print_exc()
            print(f"error: {readable_error(err)}", file=sys.stderr)
            return 1
    if "WORLD_SIZE" not in os.environ:
        from . import distributed

        nproc = distributed.process_count(cfg)
        if distributed.uses_torchrun(cfg):  # hand over to torchrun, every local rank in the same folder
            command = distributed.launch_prefix(nproc, cfg) + [
                "-m",
                "workbench.train",
                args.config,
                "--run-dir",
                str(run_dir),
            ]
            command += [f"--set={item}" for item in args.overrides]
            print("launching: " + " ".join(command), flush=True)
            os.execv(command[0], command)
    writer = EventWriter(run_dir, enabled=int(os.environ.get("RANK", "0")) == 0)
    try:
        final = run(cfg, run_dir)
    except Aborted as err:
        writer.emit("error", message=str(err), aborted=True)
        print(str(err), file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        writer.emit("error", message="aborted: interrupted", aborted=True)
        print("aborted: interrupted", file=sys.stderr)
        return 130
    except BaseException as err:  # noqa: BLE001 - every failure must reach events.jsonl
        message = readable_error(err)
        writer.emit("error", message=message)
        # the job controller and torchrun (--run-dir) log to a file, where the traceback helps
        if args.debug or args.run_dir:
            traceback.print_exc()
        print(f"error: {message}", file=sys.stderr)
        return 1
    print(f"done: result in {final}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
