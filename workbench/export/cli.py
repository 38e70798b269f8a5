"""`workbench export`: the arguments and the command (the top-level cli.py delegates here)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from .common import GGUF_TYPES, MERGED_DTYPES, QUANT_BITS, ExportError

PARITY_FAILED = 3  # exit status of --require-parity when the export does not answer as the run did


class Cancelled(Exception):
    pass


def add_arguments(p) -> None:
    p.add_argument("--run", default=None, help="a run id (under saves/), a run folder, or any PEFT adapter folder")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--merge", action="store_true", help="merge the adapter into the base")
    what.add_argument("--adapter", action="store_true", help="the adapter alone (the default)")
    what.add_argument(
        "--quantize", choices=QUANT_BITS, default=None, help="the merged model quantized with bitsandbytes"
    )
    what.add_argument(
        "--gguf",
        choices=GGUF_TYPES,
        default=None,
        help="one GGUF file + Ollama Modelfile (k-quants: run llama.cpp's llama-quantize on an f16 one)",
    )
    p.add_argument(
        "--dtype",
        default="auto",
        choices=list(MERGED_DTYPES),
        help="dtype of a merged export (auto: the base model's own)",
    )
    p.add_argument("--shard-size", default="2GB", help="largest weight file, e.g. 500MB, 2GB")
    p.add_argument("--out", default=None, help="the export folder (default: saves/<run>/exports/<kind>)")
    p.add_argument("--checkpoint", default=None, help="checkpoint-N instead of the final result")
    p.add_argument("--zip", action="store_true", help="also write a zip next to --out (always written under saves/)")
    p.add_argument(
        "--require-parity",
        action="store_true",
        help=f"exit with status {PARITY_FAILED} when the export does not answer as the trained model "
        f"does (beyond what its number format explains), or parity could not be checked",
    )
    p.add_argument("--job-file", default=None, help="write progress here (a JSON file replaced at each step)")


def main(args) -> int:
    from ..runs import locate, resolve_run
    from .job import write_job
    from .kinds import run_export

    try:
        root, spec = locate(args.run)
        ref = resolve_run(spec, root)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    run_dir = ref.run_dir
    if ref.checkpoint and not args.checkpoint:  # RUN/checkpoint-N, or a checkpoint folder given as a path
        args.checkpoint = ref.checkpoint
    kind = "merged" if args.merge else "bnb" if args.quantize else "gguf" if args.gguf else "adapter"
    job = Path(args.job_file) if args.job_file else None
    state = {"state": "running", "kind": kind, "pid": os.getpid()}
    # "WORD:SECONDS" pauses at the step whose message has WORD: lets tests interrupt at a known point
    pause_word, _, pause = os.environ.get("WORKBENCH_EXPORT_PAUSE_AT", "").partition(":")

    def progress(fraction: float, message: str) -> None:
        print(f"[{fraction:4.0%}] {message}", flush=True)
        if job:
            write_job(job, **state, fraction=fraction, message=message)
        if pause_word and pause_word in message:
            time.sleep(float(pause))

    def on_term(signum, frame):
        raise Cancelled()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        result = run_export(
            run_dir,
            kind,
            dtype=args.dtype,
            quantize=args.quantize or "4bit",
            gguf_type=args.gguf or "q8_0",
            checkpoint=args.checkpoint,
            out_dir=Path(args.out) if args.out else None,
            max_shard_size=args.shard_size,
            with_zip=args.zip or not args.out,
            progress=progress,
        )
    except Cancelled:
        if job:
            write_job(job, **{**state, "state": "cancelled", "fraction": 0.0, "message": "cancelled"})
        print("cancelled", file=sys.stderr)
        return 143
    except Exception as err:  # noqa: BLE001 - every failure must reach the job file, readably
        if not isinstance(err, (ExportError, OSError, ValueError)):
            import traceback

            traceback.print_exc()
        if job:
            write_job(job, **{**state, "state": "error", "fraction": 0.0, "message": str(err)})
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    for note in result.notes:
        print(f"note: {note}")
    print(f"{result.kind}: {result.folder}")
    if result.archive:
        print(f"download: {result.archive}")
    parity = result.parity or {}
    if parity:
        print(parity["summary"])
        for row in parity.get("details", []):
            print(
                f"  {row['tokens_agreeing']:>3} same | {row['prompt'][:50]!r}\n"
                f"      trained: {row['trained'][:70]!r}\n      export:  {row['export'][:70]!r}"
            )
    if job:
        write_job(
            job,
            **{
                **state,
                "state": "done",
                "fraction": 1.0,
                "message": "done",
                "name": result.folder.name,
                "folder": str(result.folder),
                "archive": str(result.archive) if result.archive else None,
                "notes": result.notes,
                "parity": parity.get("summary"),
            },
        )
    if args.require_parity and not parity.get("ok"):
        print(f"error: --require-parity: {parity.get('summary') or 'no parity report'}", file=sys.stderr)
        return PARITY_FAILED
    return 0
