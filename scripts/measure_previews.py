"""How long a dataset preview takes on big files, and how long another user waits behind it.

    python scripts/measure_previews.py [--rows 1000000] [--mb 100]

Writes the files to a temporary folder, then:
1. times the Data tab's preview (the core call it makes: inspect on a bounded sample) of a
   1,000,000-row JSONL and of a 100 MB file (JSONL of long rows, and one single 100 MB line);
2. times full registration of the 1,000,000-row file (every row read and checked);
3. starts `workbench ui` in this process, and over HTTP starts a preview of the big file and,
   while it runs, a one-row preview from a second session: prints both latencies;
4. times loading a YAML alias bomb.
Prints the peak memory of this process (ru_maxrss) after each step."""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_files(folder: Path, rows: int, mb: int) -> dict[str, Path]:
    many = folder / "million.jsonl"
    with open(many, "w") as handle:
        for i in range(rows):
            handle.write(json.dumps({"instruction": f"question {i}", "output": f"answer {i}"}) + "\n")
    long_rows = folder / "hundred_mb.jsonl"
    text = "lorem ipsum dolor sit amet " * 400  # ~10 KB a row
    with open(long_rows, "w") as handle:
        while handle.tell() < mb * 1024 * 1024 - 64 * 1024:  # just under the upload limit
            handle.write(json.dumps({"instruction": "summarize", "input": text, "output": text[:200]}) + "\n")
    one_line = folder / "one_line.jsonl"
    one_line.write_text(json.dumps({"instruction": "x", "output": "y " * (mb * 1024 * 1024 // 20)}) + "\n")
    small = folder / "one_row.jsonl"
    small.write_text(json.dumps({"instruction": "hi", "output": "hello"}) + "\n")
    return {"many": many, "long": long_rows, "one_line": one_line, "small": small}


def time_core_previews(files: dict[str, Path]) -> None:
    from workbench.config import RunConfig
    from workbench.data.inspect import inspect
    from workbench.models import load_tokenizer
    from workbench.ui.data_tab import PREVIEW_ROWS

    cfg = RunConfig()
    tokenizer = load_tokenizer(cfg.model_name_or_path)
    for key in ("many", "long", "one_line"):
        path = files[key]
        started = time.perf_counter()
        result = inspect(cfg, tokenizer, str(path), sample=PREVIEW_ROWS)
        print(
            f"preview {path.name} ({path.stat().st_size / 1e6:.0f} MB): {time.perf_counter() - started:.2f} s, "
            f"sampled={result.sampled}, peak RSS {peak_mb():.0f} MB"
        )


def time_full_check(files: dict[str, Path], folder: Path) -> None:
    from workbench.data import add_dataset

    data = folder / "data"
    data.mkdir()
    started = time.perf_counter()
    _, count = add_dataset(data, "million", files["many"])
    print(
        f"register million.jsonl (every row checked): {count} rows in {time.perf_counter() - started:.2f} s, "
        f"peak RSS {peak_mb():.0f} MB"
    )


def time_two_users(files: dict[str, Path], folder: Path) -> None:
    import httpx

    from workbench.ui.app import launch

    saves, data = folder / "saves", folder / "served"
    data.mkdir()
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo = launch(port=port, saves=str(saves), dataset_dir=str(data), block=False)
    url = f"http://127.0.0.1:{port}"
    try:
        client = httpx.Client(base_url=url, timeout=600)
        config = client.get("/config").json()
        components = {c["id"]: c for c in config["components"]}
        check_id = next(c["id"] for c in components.values() if c["props"].get("elem_id") == "data-check")
        upload_id = next(c["id"] for c in components.values() if c["props"].get("elem_id") == "data-upload")
        dep = next(d for d in config["dependencies"] if [check_id, "click"] in d["targets"])

        def upload(path: Path) -> str:
            with open(path, "rb") as handle:
                return client.post("/gradio_api/upload", files=[("files", (path.name, handle))]).json()[0]

        def preview(path: Path, stored: str, out: dict) -> None:
            user = httpx.Client(base_url=url, timeout=600)
            data_in = [
                {"path": stored, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}
                if i == upload_id
                else (None if components[i]["type"] in ("state", "file") else components[i]["props"].get("value"))
                for i in dep["inputs"]
            ]
            session = uuid.uuid4().hex
            started = time.perf_counter()
            user.post(
                "/gradio_api/queue/join",
                json={
                    "data": data_in,
                    "fn_index": dep["id"],
                    "session_hash": session,
                    "trigger_id": check_id,
                    "event_data": None,
                },
            )
            with user.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
                for line in stream.iter_lines():
                    if line.startswith("data:") and json.loads(line[5:]).get("msg") == "process_completed":
                        out["text"] = line
                        break
            out["seconds"] = time.perf_counter() - started

        small = upload(files["small"])
        for big in ("many", "long"):
            stored = upload(files[big])  # both files are on the server before either preview starts
            first, second = {}, {}
            worker = threading.Thread(target=preview, args=(files[big], stored, first))
            worker.start()
            time.sleep(0.3)  # the big preview is running when the second user clicks
            preview(files["small"], small, second)
            worker.join()
            assert "sampled" in first["text"], first["text"][:300]
            print(
                f"two users at once: preview of {files[big].name} {first['seconds']:.2f} s; a one-row preview "
                f"sent 0.3 s later answered in {second['seconds']:.2f} s"
            )
    finally:
        demo.close()
        demo.wb_context.controller.stop_watcher()


def time_yaml_bomb(folder: Path) -> None:
    from workbench.config import ConfigError, load_config

    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")
    )
    path = folder / "bomb.yaml"
    path.write_text(bomb)
    started = time.perf_counter()
    try:
        load_config(path)
    except ConfigError as err:
        print(
            f"YAML alias bomb ({len(bomb)} bytes): refused in {(time.perf_counter() - started) * 1000:.1f} ms: "
            f"{err.problems[0][:80]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = write_files(folder, args.rows, args.mb)
        time_yaml_bomb(folder)
        time_core_previews(files)
        time_two_users(files, folder)
        time_full_check(files, folder)


if __name__ == "__main__":
    main()
