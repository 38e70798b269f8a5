"""`workbench train|ui|chat|export|data|methods`: everything the browser does, as commands."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_train(args) -> int:
    from . import train

    argv = [args.config] + [f"--set={s}" for s in args.set]
    return train.main(argv)


def _cmd_ui(args) -> int:
    from .ui.app import launch

    import os

    auth = args.auth or os.environ.get("WORKBENCH_AUTH")  # lets a container get its login from the environment
    launch(host=args.host, port=args.port, lang=args.lang, auth=auth, auth_file=args.auth_file,
           saves=args.saves, dataset_dir=args.dataset_dir)
    return 0


def _cmd_chat(args) -> int:
    from .chat import BASE_PREFIX, ChatEngine, GenerationSettings, resolve_target
    from .config import DEFAULT_MODEL

    spec, root = args.run or BASE_PREFIX + (args.model or DEFAULT_MODEL), None
    folder = Path(args.run) if args.run else None
    if folder is not None and folder.is_dir():  # a run folder or checkpoint given as a path
        if folder.name.startswith("checkpoint-"):
            root, spec = folder.parent.parent, f"{folder.parent.name}/{folder.name}"
        else:
            root, spec = folder.parent, folder.name
    try:
        target = resolve_target(spec, root)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    engine = ChatEngine()
    settings = GenerationSettings(system_prompt=args.system or "", max_new_tokens=args.max_new_tokens,
                                  temperature=args.temperature, seed=args.seed)
    history: list[dict] = []
    prompts = [args.prompt] if args.prompt else None
    print(f"chatting with {target.label} (empty line or Ctrl-D to quit)", file=sys.stderr)
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
        history.append({"role": "user", "content": text})
        shown = 0
        update = None
        for update in engine.stream(target, history, settings):
            sys.stdout.write(update.text[shown:])
            sys.stdout.flush()
            shown = len(update.text)
        print(f"\n[{update.tokens} tokens, {update.tokens_per_second:.1f} tokens/s]" if update else "",
              file=sys.stderr)
        history.append({"role": "assistant", "content": update.text if update else ""})


def _cmd_export(args) -> int:
    from . import export
    from .train import saves_root

    run_dir = Path(args.run) if Path(args.run).is_dir() else saves_root() / args.run
    if not run_dir.is_dir():
        print(f"error: no such run: {args.run}", file=sys.stderr)
        return 2
    try:
        if args.merge:
            folder = export.merge_adapter(run_dir, Path(args.out) if args.out else None, args.dtype,
                                          args.checkpoint)
            print(f"merged model: {folder}")
            if args.zip:
                print(f"archive: {export.zip_folder(folder)}")
        else:
            result = export.export_adapter(run_dir, args.checkpoint)
            print(f"adapter: {result.folder}\narchive: {result.archive}")
    except export.ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


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
        if fld.metadata["group"] in ("method", "lora", "preference") or name in ("quantization_bit", "quantization_type", "double_quantization"):
            meta = fld.metadata
            allowed = f" [{', '.join('empty' if c is None else str(c) for c in meta['choices'])}]" if meta["choices"] else ""
            print(f"  {name:<24} default {fld.default!r}{allowed}: {meta['help'][args.lang]}")
    return 0


def _cmd_data(args) -> int:
    from .config import RunConfig
    from .data import DataError, FORMATS, detect_format, normalize, read_records, register_dataset
    from .data.registry import DatasetEntry

    try:
        if args.data_command == "inspect":
            from .data.inspect import inspect
            from .models import load_tokenizer

            cfg = RunConfig(dataset=args.name, dataset_dir=args.dataset_dir, cutoff_len=args.cutoff_len,
                            model_name_or_path=args.model or RunConfig().model_name_or_path)
            path = Path(args.name)
            if path.is_file():  # a file: inspect it without registering it
                records = read_records(path)
                fmt = args.format or detect_format(records, str(path))
                rows = normalize(records, DatasetEntry(name=path.stem, format=fmt), fmt, str(path))
                print(json.dumps({"file": str(path), "format": fmt, "rows": len(rows)}, ensure_ascii=False))
                return 0
            result = inspect(cfg, load_tokenizer(cfg.model_name_or_path))
            print(json.dumps(result.summary(), ensure_ascii=False, indent=2))
            return 0
        if args.data_command == "add":
            path = Path(args.file)
            records = read_records(path)
            fmt = args.format or detect_format(records, str(path))
            if fmt not in FORMATS:
                raise DataError(f"unknown format {fmt}", str(path))
            normalize(records, DatasetEntry(name=args.name, format=fmt), fmt, str(path))  # validate all rows
            target = Path(args.dataset_dir) / path.name
            if target.resolve() != path.resolve():
                target.write_bytes(path.read_bytes())
            register_dataset(args.dataset_dir, args.name, {"file_name": path.name, "format": fmt})
            print(f"registered '{args.name}' ({fmt}, {len(records)} rows) in {args.dataset_dir}")
            return 0
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 2


# ---- bench (issue 9: performance) ----
def _cmd_bench(args) -> int:
    from . import bench

    return bench.run_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Fine-tune language models.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train as a YAML config says")
    p.add_argument("config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("ui", help="serve the browser workbench")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (non-loopback needs a login)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--lang", default="en", choices=["en", "zh"])
    p.add_argument("--auth", default=None, metavar="USER:PASSWORD")
    p.add_argument("--auth-file", default=None, help="a file with one user:password per line")
    p.add_argument("--saves", default=None, help="the runs folder (default: ./saves)")
    p.add_argument("--dataset-dir", default="data")
    p.set_defaults(func=_cmd_ui)

    p = sub.add_parser("chat", help="chat with the base model or a run in the terminal")
    p.add_argument("--run", default=None, help="a run id or run/checkpoint-N (default: the base model)")
    p.add_argument("--model", default=None, help="the base model when no run is given")
    p.add_argument("--prompt", default=None, help="answer one prompt and exit")
    p.add_argument("--system", default=None)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=_cmd_chat)

    p = sub.add_parser("export", help="merge or package a run's result")
    p.add_argument("--run", required=True)
    p.add_argument("--merge", action="store_true", help="merge the adapter into the base")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--out", default=None)
    p.add_argument("--checkpoint", default=None, help="checkpoint-N instead of the final result")
    p.add_argument("--zip", action="store_true", help="also write a zip of the merged model")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("methods", help="list every method, stage and option")
    p.add_argument("--lang", default="en", choices=["en", "zh"])
    p.set_defaults(func=_cmd_methods)

    p = sub.add_parser("data", help="inspect or register datasets")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("inspect", help="format, splits and token statistics")
    q.add_argument("name", help="a registered dataset name or a file")
    q.add_argument("--format", default=None)
    q.add_argument("--dataset-dir", default="data")
    q.add_argument("--model", default=None)
    q.add_argument("--cutoff-len", type=int, default=1024)
    q = data_sub.add_parser("add", help="register a file in the dataset registry")
    q.add_argument("file")
    q.add_argument("--name", required=True)
    q.add_argument("--format", default=None)
    q.add_argument("--dataset-dir", default="data")
    p.set_defaults(func=_cmd_data)

    # bench (issue 9): its own options live in workbench/bench.py
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
