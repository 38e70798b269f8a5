"""`workbench train|ui|chat|export|data|methods`: everything the browser does, as commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_train(args) -> int:
    from . import train

    argv = [args.config] + [f"--set={s}" for s in args.set] + (["--debug"] if args.debug else [])
    argv += ["--check"] * bool(args.check) + ["--calibrate"] * bool(args.calibrate)
    return train.main(argv)


def _cmd_ui(args) -> int:
    import os

    from .ui.app import launch

    auth = args.auth or os.environ.get("WORKBENCH_AUTH")  # lets a container get its login from the environment
    launch(
        host=args.host,
        port=args.port,
        lang=args.lang,
        auth=auth,
        auth_file=args.auth_file,
        saves=args.saves,
        dataset_dir=args.dataset_dir,
        allow_local_models=args.allow_local_models,
    )
    return 0


def _cmd_serve(args) -> int:
    import os

    from .serve import API_KEY_ENV, serve

    key = args.api_key or os.environ.get(API_KEY_ENV) or None
    try:
        serve(host=args.host, port=args.port, api_key=key, saves=args.saves, base_model=args.model)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _add_serve_parser(sub) -> None:
    from .config import DEFAULT_MODEL

    p = sub.add_parser("serve", help="an OpenAI-compatible API for the base model, runs and checkpoints")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (non-loopback needs an API key)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer KEY' (default: the WORKBENCH_API_KEY environment variable)",
    )
    p.add_argument("--saves", default=None, help="the runs folder (default: ./saves)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="the base model served as base:MODEL")
    p.set_defaults(func=_cmd_serve)


def _cmd_chat(args) -> int:
    from .chat import BASE_PREFIX, GenerationSettings, resolve_target
    from .config import DEFAULT_MODEL, ConfigError

    if args.config:  # a LLaMA-Factory inference YAML
        try:
            target, settings = _chat_yaml(args)
        except (ValueError, ConfigError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return _chat_loop(args, target, settings)
    from .runs import locate

    root, spec = locate(args.run) if args.run else (None, BASE_PREFIX + (args.model or DEFAULT_MODEL))
    quant = {"run": "run", "none": None, "8": 8, "4": 4}[args.quantization]
    try:
        target = resolve_target(spec, root, quant)
        settings = GenerationSettings(
            system_prompt=args.system or "",
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            repetition_penalty=args.repetition_penalty,
            seed=args.seed,
        ).check()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return _chat_loop(args, target, settings)


def _chat_yaml(args):
    """(target, generation settings) from a LLaMA-Factory inference YAML; any plain PEFT adapter
    folder or run folder works as adapter_name_or_path."""
    from dataclasses import replace

    from .chat import BASE_PREFIX, GenerationSettings, Target, folder_target
    from .config import CHAT_KEYS, load_tool_yaml

    notes: list[str] = []
    data = load_tool_yaml(args.config, CHAT_KEYS, notes)
    for note in dict.fromkeys(notes):
        print(f"note: {note}", file=sys.stderr)
    base = data.get("model_name_or_path")
    template = str(data.get("template") or "auto")
    if _yaml_true(data.get("enable_thinking", True)) is False and not template.endswith("_nothink"):
        template += "_nothink"
    quant = data.get("quantization_bit")
    adapters = [a.strip() for a in str(data.get("adapter_name_or_path") or "").split(",") if a.strip()]
    if len(adapters) > 1:
        raise ValueError("adapter_name_or_path: several adapters at once are not supported; name one")
    if adapters:
        target = folder_target(adapters[0], base, template, quant)
    else:
        target = Target(label=BASE_PREFIX + base, base_model=base, quantization_bit=quant, template=template)
    target = replace(target, trust_remote_code=_yaml_true(data.get("trust_remote_code", False)))
    settings = GenerationSettings(
        system_prompt=args.system or str(data.get("default_system") or ""),
        max_new_tokens=int(data.get("max_new_tokens", args.max_new_tokens)),
        temperature=float(data.get("temperature", args.temperature)),
        top_p=float(data.get("top_p", args.top_p)),
        top_k=int(data.get("top_k", args.top_k)),
        repetition_penalty=float(data.get("repetition_penalty", args.repetition_penalty)),
        seed=args.seed,
    ).check()
    return target, settings


def _yaml_true(value) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes", "on")


def _chat_loop(args, target, settings) -> int:
    import threading

    from .chat import ChatEngine

    engine = ChatEngine()
    history: list[dict] = []
    prompts = [args.prompt] if args.prompt else None
    if prompts is None:
        print(
            f"chatting with {target.label} (empty line or Ctrl-D to quit, Ctrl-C stops a reply, "
            f"/clear forgets the conversation)",
            file=sys.stderr,
        )
    while True:
        if prompts is not None:
            if not prompts:
                return 0
            text = prompts.pop()
        else:
            try:
                text = input("you> ")
            except EOFError:
                return 0
        if not text.strip():
            return 0
        if text.strip() == "/clear":
            history.clear()
            continue
        if text.strip().split(" ")[0] in RATING_COMMANDS:
            _rate_from_cli(args, text.strip(), history, target.label, settings)
            continue
        history.append({"role": "user", "content": text})
        stop, shown, update = threading.Event(), 0, None
        try:
            for update in _stream_or_explain(engine, target, history, settings, stop):
                sys.stdout.write(update.text[shown:])
                sys.stdout.flush()
                shown = len(update.text)
                if update.done and update.template_fallback and not history[:-1]:
                    print("\n[no chat template: using the plain fallback]", file=sys.stderr)
        except KeyboardInterrupt:  # stop this reply, keep the conversation
            stop.set()
            print("\n[stopped]", file=sys.stderr)
        print()
        if update is not None:
            print(f"[{update.tokens} tokens, {update.tokens_per_second:.1f} tokens/s]", file=sys.stderr)
        history.append({"role": "assistant", "content": update.text if update else ""})
        if args.rate and prompts is not None:  # --prompt with --rate: judge this one reply
            _rate_from_cli(args, "/" + args.rate, history, target.label, settings)


# the same verdicts as the Chat tab's single mode: /up, /down, /edit CORRECTED TEXT
RATING_COMMANDS = ("/up", "/down", "/edit")


def _rate_from_cli(args, command: str, history: list[dict], model: str, settings) -> None:
    import dataclasses

    from .ratings import RatingError, rate_panes

    verdict, _, edited = command[1:].partition(" ")
    if not args.ratings:
        print("error: pass --ratings NAME to collect ratings", file=sys.stderr)
        return
    try:
        out = rate_panes(
            args.dataset_dir,
            args.ratings,
            args.ratings_kind,
            verdict,
            history,
            None,
            model,
            None,
            dataclasses.asdict(settings),
            edited or None,
        )
    except RatingError as err:
        print(f"error: {err}", file=sys.stderr)
        return
    print(f"[rated: {args.ratings} holds {out['ratings']} ratings, {out['rows']} training rows]", file=sys.stderr)


def _stream_or_explain(engine, target, history, settings, stop):
    """The engine's stream; a model that cannot be loaded ends the command with its reason."""
    from .models import ModelError

    try:
        yield from engine.stream(target, history, settings, stop)
    except (ModelError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def _note_export_base(adapter: str, named: str | None) -> None:
    """The merge uses the base the adapter was trained on; say so when the YAML names another."""
    from .export.common import ExportError
    from .export.source import run_source

    try:
        base = run_source(Path(adapter)).base_model if Path(adapter).is_dir() else None
    except ExportError:
        return
    if named and base and str(named) != str(base):
        print(
            f"note: model_name_or_path {named} differs from the adapter's own base {base}; the "
            f"adapter's base is merged into",
            file=sys.stderr,
        )


def _cmd_export(args) -> int:
    from .export.cli import main

    if args.config:  # a LLaMA-Factory merge YAML
        from .config import EXPORT_KEYS, ConfigError, load_tool_yaml

        notes: list[str] = []
        try:
            data = load_tool_yaml(args.config, EXPORT_KEYS, notes)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        for note in dict.fromkeys(notes):
            print(f"note: {note}", file=sys.stderr)
        adapter = str(data.get("adapter_name_or_path") or "").strip()
        if not adapter or "," in adapter:
            print(
                f"error: {args.config}: name one adapter_name_or_path to merge (a run folder or any "
                f"PEFT adapter folder)",
                file=sys.stderr,
            )
            return 2
        args.run, args.merge = adapter, True
        args.out = args.out or data.get("export_dir")
        _note_export_base(adapter, data.get("model_name_or_path"))
    elif not args.run:
        print("error: give --run RUN or a merge CONFIG.yaml", file=sys.stderr)
        return 2
    return main(args)


def _cmd_methods(args) -> int:
    from .config import FIELDS
    from .methods import METHODS, STAGES

    lang = 1 if args.lang == "zh" else 0
    print("finetuning_type (method):")
    for name, text in METHODS.items():
        print(f"  {name:<16} {text[lang]}")
    print("\nstage:")
    for name, text in STAGES.items():
        print(f"  {name:<16} {text[lang]}")
    print("\noptions:")
    for name, fld in FIELDS.items():
        if fld.metadata["group"] in ("method", "lora", "preference") or name in (
            "quantization_bit",
            "quantization_type",
            "double_quantization",
        ):
            meta = fld.metadata
            allowed = (
                f" [{', '.join('empty' if c is None else str(c) for c in meta['choices'])}]" if meta["choices"] else ""
            )
            print(f"  {name:<24} default {fld.default!r}{allowed}: {meta['help'][args.lang]}")
    return 0


def _cmd_data(args) -> int:
    from .data import DataError, add_dataset

    try:
        if args.data_command == "inspect":
            return _data_inspect(args)
        if args.data_command == "add":
            fmt, count = add_dataset(
                args.dataset_dir,
                args.name,
                args.file,
                args.format,
                args.columns,
                args.text_split,
                overwrite=args.replace,
            )
            print(f"registered '{args.name}' ({fmt}, {count} rows) in {Path(args.dataset_dir) / 'uploads'}")
            return 0
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 2


def _data_inspect(args) -> int:
    """Format, splits, token statistics and the first rows of a file or a registered dataset."""
    from .config import ConfigError, RunConfig, from_dict
    from .data.inspect import inspect, is_file_source, length_histogram, row_preview
    from .models import ModelError, load_tokenizer

    is_file = is_file_source(args.dataset_dir, args.name)
    try:
        cfg = from_dict(
            {
                **RunConfig().to_dict(),
                "dataset": "identity" if is_file else args.name,
                "dataset_dir": args.dataset_dir,
                "cutoff_len": args.cutoff_len,
                "val_size": args.val_size,
                "test_size": args.test_size,
                "seed": args.seed,
                "model_name_or_path": args.model or RunConfig().model_name_or_path,
            }
        )
        tokenizer = load_tokenizer(cfg.model_name_or_path, cfg.trust_remote_code)
    except (ConfigError, ModelError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    result = inspect(cfg, tokenizer, args.name if is_file else None, args.format, args.columns, args.text_split)
    summary = {"source": args.name, **result.summary()}
    if args.json:
        summary["first_rows"] = [row_preview(r) for r in result.rows[: args.rows]]
        print(json.dumps(summary, ensure_ascii=False, indent=2))
        return 0
    s, splits = summary, summary["splits"]
    print(f"source:   {args.name}")
    print(f"format:   {s['format'] or 'registered'} ({s['kind']} rows)")
    print(
        f"splits:   train {splits['train']} · validation {splits['validation']} · test {splits['test']} "
        f"(seed {cfg.seed})"
    )
    print(
        f"tokens:   {s['tokens']} in the train split, {s['trainable_tokens']} carry loss "
        f"(model {cfg.model_name_or_path}, stage {s['stage']})"
    )
    print(
        f"lengths:  longest {s['max_length']}, mean {s['mean_length']}; cutoff {s['cutoff_len']} truncates "
        f"{s['truncated']} rows, drops {s['dropped']} entirely"
    )
    histogram = length_histogram(result.stats.lengths, bins=10)
    widest = max((n for _, n in histogram), default=1) or 1
    for label, count in histogram:
        print(f"  {label:>13} {'█' * max(1 if count else 0, round(30 * count / widest))} {count}")
    print(f"first {min(args.rows, len(result.rows))} rows:")
    for number, row in enumerate(result.rows[: args.rows], start=1):
        fields = " | ".join(f"{k}: {_clip(v)}" for k, v in row_preview(row).items())
        print(f"  {number}. [{row.get('split', '')}] {fields}")
    return 0


def _clip(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- workbench reward: score responses with a trained reward model (stage rm) ---------------
def _cmd_reward(args) -> int:
    from .config import ConfigError
    from .models import ModelError
    from .preference import PreferenceError, RewardModel

    try:
        reward_model = RewardModel(args.run)
    except (PreferenceError, ConfigError, ModelError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for response in args.response:
        value = reward_model.score(args.prompt, response)
        print(f"{value:.4f}" if len(args.response) == 1 else f"{value:.4f}\t{response}")
    return 0


def _add_reward_parser(sub) -> None:
    p = sub.add_parser("reward", help="score responses with a trained reward model (stage rm)")
    p.add_argument("--run", required=True, help="a reward-model run: its folder or its id under saves/")
    p.add_argument("--prompt", required=True, help="the user message the response answers")
    p.add_argument("--response", required=True, action="append", help="a response to score (repeat to compare several)")
    p.set_defaults(func=_cmd_reward)


# ---- eval ---------------------------------------------------------------------------
def _cmd_eval(args) -> int:
    from .config import DEFAULT_MODEL
    from .data import DataError
    from .evaluate import EvalError, Evaluator, base_spec_of, before_after, evaluate, gap_analysis, run_config_of
    from .runs import BASE_PREFIX, locate, saves_root

    root = Path(args.saves) if args.saves else saves_root()
    if args.run:
        root, spec = locate(args.run, root)
    else:
        spec = BASE_PREFIX + (args.model or DEFAULT_MODEL)
    if not args.run and (args.compare or not args.dataset):
        print("error: --base needs --dataset (and --compare needs --run)", file=sys.stderr)
        return 2
    evaluator = Evaluator(root=root, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)

    def progress(done, total, what):
        print(f"\r{what}: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    try:
        if args.gap:
            cfg = run_config_of(spec, root) if args.run else None
            report = gap_analysis(
                base_spec_of(spec, root), args.dataset or cfg.dataset, evaluator, progress, args.limit, cfg=cfg
            )
            print(json.dumps(report, ensure_ascii=False, indent=2))
            return 0
        if args.compare:
            report = before_after(
                spec,
                args.dataset,
                args.split,
                evaluator,
                progress,
                args.limit,
                args.threshold,
                reward=_reward_of_args(args),
            )
            _print_compare(report)
            return 0
        result = evaluate(
            spec,
            args.dataset,
            args.split,
            evaluator,
            progress,
            args.limit,
            dataset_dir=args.dataset_dir,
            scorer=_scorer_of_args(args, spec, root),
        )
    except (EvalError, DataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {
                "target": result.target,
                "dataset": result.dataset,
                "split": result.split,
                "rows": result.rows,
                **result.metrics,
            },
            ensure_ascii=False,
            indent=2,
        )
    )
    return 0


def _reward_of_args(args):
    """A RewardSpec from --reward-funcs/--reward-model (None: a grpo/rloo run's own rewards)."""
    from .reward_rules import parse_weights, split_list
    from .rewards import RewardSpec, reward_run_problem

    if not args.reward_funcs and not args.reward_model:
        return None
    if args.reward_model and (problem := reward_run_problem(args.reward_model, "--reward-model")):
        raise ValueError(problem)
    spec = RewardSpec(
        split_list(args.reward_funcs),
        args.reward_model,
        parse_weights(args.reward_weights or ""),
        args.reward_regex or "",
    )
    for name in spec.rules:
        spec.rule(name)  # an unknown rule or a bad regex fails here, naming it
    return spec


def _scorer_of_args(args, spec: str, root):
    from .evaluate import reward_scorer, run_config_of
    from .rewards import Scorer

    reward = _reward_of_args(args)
    if reward is not None:
        return Scorer(reward)
    return reward_scorer(run_config_of(spec, root)) if args.run else None


def _print_compare(report: dict) -> None:
    base, tuned, delta = report["base_metrics"], report["tuned_metrics"], report["delta"]
    print(
        f"{report['target']} vs {report['base']} on {report['dataset']}/{report['split']} "
        f"({len(report['rows'])} rows): {report['improved']} improved, {report['worse']} got worse"
    )
    rewards = sorted(k for k in tuned if k.startswith("reward"))  # grpo/rloo or --reward-funcs
    for key in ("exact_match", "bleu", "rouge1", "rouge2", "rougeL", "loss", "perplexity", "accuracy", "f1", *rewards):
        if key in tuned and key in base:
            print(f"  {key:<12} {base[key]:>9.4f} -> {tuned[key]:>9.4f}  ({delta[key]:+.4f})")
    forgot = report["forgetting"]
    flag = "  WARNING: above the threshold" if forgot["warning"] else ""
    print(
        f"  forgetting: general-text perplexity {forgot['perplexity_before']:.2f} -> "
        f"{forgot['perplexity_after']:.2f} ({forgot['change_percent']:+.1f}%, threshold "
        f"{forgot['threshold_percent']:.0f}%){flag}"
    )


def _add_eval_parser(sub) -> None:
    from .evaluate import FORGETTING_THRESHOLD

    p = sub.add_parser("eval", help="evaluate the base or a run on a dataset split")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--run", help="a run id, run/checkpoint-N, or a run folder")
    who.add_argument("--base", action="store_true", help="evaluate the base model (needs --dataset)")
    p.add_argument("--model", default=None, help="the base model (default: the embedded one)")
    p.add_argument("--dataset", default=None, help="a registered dataset (default: the run's own)")
    p.add_argument("--dataset-dir", default=None)
    p.add_argument("--split", default="test", choices=["test", "validation", "train"])
    p.add_argument(
        "--compare",
        action="store_true",
        help="also run the base on the same rows: before/after table and forgetting check",
    )
    p.add_argument("--gap", action="store_true", help="gap analysis: the base on the validation split")
    p.add_argument("--limit", type=int, default=None, help="score only the first N rows")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--threshold", type=float, default=FORGETTING_THRESHOLD, help="forgetting warning threshold, in %%")
    p.add_argument(
        "--reward-funcs",
        default=None,
        help="also report the mean reward of these rules (exact_match, numeric_match, regex, "
        "json, length; default: a grpo/rloo run's own rewards)",
    )
    p.add_argument("--reward-model", default=None, help="also report the mean score of this rm run")
    p.add_argument("--reward-weights", default=None, help="weights of the rewards, comma-separated")
    p.add_argument("--reward-regex", default=None, help="the pattern of the regex rule")
    p.add_argument("--saves", default=None, help="the runs folder (default: ./saves)")
    p.set_defaults(func=_cmd_eval)


# ---- end eval ------------------------------------------------------------------------------
# ---- bench: training speed ----
def _cmd_bench(args) -> int:
    from . import bench

    return bench.run_from_args(args)


def _cmd_runs(args) -> int:
    from .jobs import print_runs

    return print_runs(args.saves, args.json)


def build_parser() -> argparse.ArgumentParser:
    from .data.formats import FORMATS

    parser = argparse.ArgumentParser(prog="workbench", description="Fine-tune language models.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train as a YAML config says")
    p.add_argument("config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--debug", action="store_true", help="print the traceback of a failure")
    p.add_argument(
        "--check",
        action="store_true",
        help="validate and print the resolved config, "
        "trainable parameters, compute dtype and memory and time estimates; load no "
        "weights, start nothing",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="with --check: measure this run's speed with a few steps when none is known",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("ui", help="serve the browser workbench")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (non-loopback needs a login)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--lang", default="en", choices=["en", "zh"])
    p.add_argument("--auth", default=None, metavar="USER:PASSWORD")
    p.add_argument("--auth-file", default=None, help="a file with one user:password per line")
    p.add_argument(
        "--allow-local-models",
        action="store_true",
        help="let the browser load model folders anywhere on this machine (default: only "
        "inside the workspace and the model cache)",
    )
    p.add_argument("--saves", default=None, help="the runs folder (default: ./saves)")
    p.add_argument("--dataset-dir", default="data")
    p.set_defaults(func=_cmd_ui)

    p = sub.add_parser("chat", help="chat with the base model or a run in the terminal")
    p.add_argument(
        "config",
        nargs="?",
        default=None,
        help="a LLaMA-Factory inference YAML (model_name_or_path, adapter_name_or_path, "
        "template, generation keys) instead of --run/--model",
    )
    p.add_argument("--run", default=None, help="a run id or run/checkpoint-N (default: the base model)")
    p.add_argument("--model", default=None, help="the base model when no run is given")
    p.add_argument("--prompt", default=None, help="answer one prompt and exit")
    p.add_argument("--system", default=None)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--top-k", type=int, default=50, help="0 = off")
    p.add_argument("--repetition-penalty", type=float, default=1.1, help="1 = off")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--quantization",
        default="run",
        choices=["run", "none", "8", "4"],
        help="load in 8/4-bit, unquantized, or as the run trained (default)",
    )
    p.add_argument(
        "--ratings",
        default=None,
        metavar="NAME",
        help="a ratings dataset to collect into (created when new): /up, /down, "
        "/edit TEXT rate the last reply, as the Chat tab does",
    )
    p.add_argument(
        "--ratings-kind",
        default="kto",
        choices=["kto", "preference"],
        help="kind of a new ratings dataset (/up and /down need kto)",
    )
    p.add_argument(
        "--rate", default=None, choices=["up", "down"], help="with --prompt: rate the reply (needs --ratings)"
    )
    p.add_argument("--dataset-dir", default="data", help="where ratings datasets are registered")
    p.set_defaults(func=_cmd_chat)

    p = sub.add_parser("export", help="merge, quantize or package a run's result (GGUF too)")
    from .export.cli import add_arguments as add_export_arguments

    add_export_arguments(p)
    p.add_argument(
        "config",
        nargs="?",
        default=None,
        help="a LLaMA-Factory merge YAML (model_name_or_path, adapter_name_or_path, export_dir)",
    )
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("methods", help="list every method, stage and option")
    p.add_argument("--lang", default="en", choices=["en", "zh"])
    p.set_defaults(func=_cmd_methods)

    p = sub.add_parser("data", help="inspect or register datasets")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("inspect", help="format, splits, token statistics and first rows")
    q.add_argument("name", help="a registered dataset name or a file")
    q.add_argument("--format", default=None, choices=list(FORMATS), help="override the detected format")
    q.add_argument("--columns", default=None, metavar="STD=COL,...", help="map your columns to standard names")
    q.add_argument(
        "--text-split",
        default="auto",
        choices=["auto", "blank", "line"],
        help=".txt: one document per blank-line block or per line",
    )
    q.add_argument("--dataset-dir", default="data")
    q.add_argument("--model", default=None, help="whose tokenizer counts the tokens (default model)")
    q.add_argument("--cutoff-len", type=int, default=1024)
    q.add_argument("--val-size", type=float, default=0.0)
    q.add_argument("--test-size", type=float, default=0.0)
    q.add_argument("--seed", type=int, default=42)
    q.add_argument("--rows", type=int, default=3, help="how many first rows to print")
    q.add_argument("--json", action="store_true", help="print the summary as JSON")
    q = data_sub.add_parser("add", help="check a file and register it (kept in DATASET_DIR/uploads)")
    q.add_argument("file")
    q.add_argument("--name", required=True)
    q.add_argument("--format", default=None, choices=list(FORMATS))
    q.add_argument("--columns", default=None, metavar="STD=COL,...")
    q.add_argument("--text-split", default="auto", choices=["auto", "blank", "line"])
    q.add_argument("--dataset-dir", default="data")
    q.add_argument("--replace", action="store_true", help="replace an upload of the same name")
    p.set_defaults(func=_cmd_data)
    _add_reward_parser(sub)
    _add_eval_parser(sub)
    _add_serve_parser(sub)

    p = sub.add_parser("runs", help="list every run: status, stage and method, dataset, steps, last loss, duration")
    p.add_argument("--saves", default=None, help="the runs folder (default: ./saves)")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=_cmd_runs)

    # bench: its own options live in workbench/bench.py
    from .bench import add_arguments as add_bench_arguments

    p = sub.add_parser("bench", help="training speed: ours vs trl defaults (JSON summary last)")
    add_bench_arguments(p)
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
