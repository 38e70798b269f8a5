"""The server as an attacker sees it: plain HTTP against `workbench ui --auth`, with and without a
login. Every case asserts the refusal and that nothing outside the workspace was read or written.

One server serves the whole module (started in this process, so its limits can be lowered and its
log read). Outside the workspace sits a folder with a secret; symlinks to it are planted inside."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from pathlib import Path

import httpx
import pytest

from browser import free_port

SECRET = "TOPSECRET-7f3a"
USER, PASSWORD = "alice", "correct-horse-battery"


# values an attacker puts where a run, checkpoint, export or dataset name belongs
def tampered_names(outside: Path) -> list[str]:
    return [
        "../outside",
        "../../outside/secret.json",
        "%2e%2e%2foutside",
        str(outside),
        str(outside / "secret.json"),
        "run-a/../../outside",
        "run-a/../../../outside/secret.json",
        "linked-run",
        "linked-run/checkpoint-1",
        "run-a/checkpoint-9/../../../outside",
        "~/",
        "dataset_info",
        "abs",
        "climb",
        "linked",
    ]


def snapshot(folder: Path) -> dict:
    """Every file below folder with its size and modification time (what 'unchanged' means)."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()} | {
        "atime-secret": (folder / "secret.json").stat().st_atime_ns
    }


# ---- the server ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory, default_model_dir):
    from workbench.ui import app as app_module

    base = tmp_path_factory.mktemp("security")
    outside, saves, data = base / "outside", base / "workspace" / "saves", base / "workspace" / "data"
    for folder in (outside, saves, data / "uploads"):
        folder.mkdir(parents=True)
    rows = [{"instruction": f"{SECRET} instruction {i}", "output": f"{SECRET} answer {i}"} for i in range(4)]
    (outside / "secret.json").write_text(json.dumps(rows))
    (outside / "dataset_info.json").write_text(json.dumps({"stolen": {"file_name": "secret.json"}}))
    # a hand-edited uploads registry whose entries lead out: absolute, climbing, through a symlink
    (data / "uploads" / "link.json").symlink_to(outside / "secret.json")
    (data / "uploads" / "dataset_info.json").write_text(
        json.dumps(
            {
                "abs": {"file_name": str(outside / "secret.json")},
                "climb": {"file_name": "../../../outside/secret.json"},
                "linked": {"file_name": "link.json"},
                "sneaky": {"file_name": "ok.json", "test_file_name": "../../../outside/secret.json"},
            }
        )
    )
    # a run, a symlinked "run" and a planted page among its exports
    run = saves / "run-a"
    (run / "final").mkdir(parents=True)
    (run / "checkpoint-1").mkdir()
    (run / "checkpoint-1" / "trainer_state.json").write_text("{}")
    (run / "config.yaml").write_text("dataset: identity\nstage: sft\n")
    (run / "job.json").write_text(json.dumps({"run_id": "run-a", "status": "finished"}))
    (run / "events.jsonl").write_text(json.dumps({"type": "end", "step": 1, "max_steps": 1, "time": 1}) + "\n")
    (run / "exports" / "merged").mkdir(parents=True)
    (run / "exports" / "merged" / "evil.html").write_text("<script>alert(document.cookie)</script>")
    (saves / "linked-run").symlink_to(outside, target_is_directory=True)
    (saves / "link-secret.json").symlink_to(outside / "secret.json")
    # a file left by an earlier server in the uploads folder: start-up removes it
    stale = saves / app_module.UPLOADS_DIR / "stale" / "old.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("[]")

    previous, operator = os.environ.get("GRADIO_TEMP_DIR"), app_module.OPERATOR_UPLOADS
    app_module.OPERATOR_UPLOADS = None
    port = free_port()
    demo = app_module.launch(port=port, auth=f"{USER}:{PASSWORD}", saves=str(saves), dataset_dir=str(data), block=False)
    try:
        yield {
            "url": f"http://127.0.0.1:{port}",
            "outside": outside,
            "saves": saves,
            "data": data,
            "stale": stale,
            "demo": demo,
            "before": snapshot(outside),
        }
    finally:
        demo.close()
        demo.wb_context.controller.stop_watcher()
        app_module.OPERATOR_UPLOADS = operator
        if previous is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = previous


@pytest.fixture(autouse=True)
def nothing_outside_touched(request):
    """After every case: the outside folder is exactly as it was (nothing written, nothing read)."""
    yield
    if "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
        assert snapshot(srv["outside"]) == srv["before"]


class Attacker:
    """Gradio's HTTP API spoken by hand: login, config, upload, and any event by its trigger."""

    def __init__(self, url: str, login: bool = True):
        from workbench.ui import guard

        guard.LIMITER._failures.clear()
        self.http = httpx.Client(base_url=url, timeout=120)
        if login:
            assert self.http.post("/login", data={"username": USER, "password": PASSWORD}).status_code == 200
            self.config = self.http.get("/config").json()
            self.components = {c["id"]: c for c in self.config["components"]}

    def component(self, elem_id: str) -> dict:
        return next(c for c in self.components.values() if c["props"].get("elem_id") == elem_id)

    def events_taking(self, elem_id: str) -> list[dict]:
        wanted = self.component(elem_id)["id"]
        return [d for d in self.config["dependencies"] if wanted in d["inputs"] and d["backend_fn"]]

    def event(self, elem_id: str, kind: str) -> dict:
        wanted = self.component(elem_id)["id"]
        return next(d for d in self.config["dependencies"] if [wanted, kind] in d["targets"] and d["backend_fn"])

    def default(self, component_id: int):
        component = self.components[component_id]
        return None if component["type"] in ("state", "file", "uploadbutton") else component["props"].get("value")

    def call(self, dep: dict, **values) -> dict:
        """Run an event with every input at its default except `values` (by elem_id)."""
        ids = {self.component(k)["id"]: v for k, v in values.items()}
        data = [ids.get(i, self.default(i)) for i in dep["inputs"]]
        session = uuid.uuid4().hex
        trigger = dep["targets"][0][0] if dep["targets"] else None
        body = {"data": data, "fn_index": dep["id"], "session_hash": session, "trigger_id": trigger, "event_data": None}
        if not dep["queue"]:
            reply = self.http.post("/gradio_api/run/predict", json=body)
            return {"success": reply.status_code == 200 and "error" not in reply.json(), "text": reply.text}
        assert self.http.post("/gradio_api/queue/join", json=body).status_code == 200
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return {
                        "success": message.get("success", False),
                        "text": json.dumps(message["output"], ensure_ascii=False),
                    }
        raise AssertionError("the event never completed")

    def upload(self, *files: tuple[str, bytes]) -> httpx.Response:
        return self.http.post("/gradio_api/upload", files=[("files", (name, body)) for name, body in files])


def file_data(path: str) -> dict:
    return {"path": path, "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}


def refused(result: dict) -> bool:
    """An error, or a handled refusal shown as a warning, and never the secret."""
    assert SECRET not in result["text"]
    return not result["success"] or "⚠️" in result["text"] or "must" in result["text"]


# ---- before login -----------------------------------------------------------------------------
def test_nothing_but_the_login_page_before_login(server):
    anonymous = Attacker(server["url"], login=False).http
    page = anonymous.get("/")
    assert page.status_code == 200
    for name in ("run-a", "linked-run", "identity", "checkpoint-1"):
        assert name not in page.text
    for path in ("/config", "/gradio_api/info", f"/gradio_api/file={server['saves'] / 'run-a' / 'config.yaml'}"):
        reply = anonymous.get(path)
        assert reply.status_code in (401, 403), path
        assert "run-a" not in reply.text and "identity" not in reply.text
    join = anonymous.post("/gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": "x"})
    assert join.status_code in (401, 403)


def test_failed_logins_are_rate_limited_and_logged_with_the_address(server, caplog):
    from workbench.ui import guard

    guard.LIMITER._failures.clear()
    client = httpx.Client(base_url=server["url"], timeout=30)
    with caplog.at_level(logging.WARNING, logger="workbench.security"):
        codes = [
            client.post("/login", data={"username": USER, "password": f"guess-{i}"}).status_code
            for i in range(guard.LOGIN_FAILURES)
        ]
        assert codes == [400] * guard.LOGIN_FAILURES
        # the next attempt is refused before the password is looked at, even the right one
        blocked = client.post("/login", data={"username": USER, "password": PASSWORD})
        assert blocked.status_code == 429 and "retry-after" in blocked.headers
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "failed login from 127.0.0.1" in logged and "rate limit" in logged
    assert "guess-" not in logged and PASSWORD not in logged
    guard.LIMITER._failures.clear()


# ---- files served ---------------------------------------------------------------------------------
def test_file_route_stays_inside_the_workspace(server):
    attacker = Attacker(server["url"])
    saves, outside = server["saves"], server["outside"]
    for target in (
        f"{saves}/../../outside/secret.json",
        f"{saves}/%2e%2e/%2e%2e/outside/secret.json",
        f"{saves}/%252e%252e/%252e%252e/outside/secret.json",
        str(outside / "secret.json"),
        f"{saves}/link-secret.json",
        f"{saves}/linked-run/secret.json",
        "/etc/passwd",
        "file:///etc/passwd",
    ):
        reply = attacker.http.get(f"/gradio_api/file={target}")
        assert reply.status_code >= 400, target
        assert SECRET not in reply.text and "root:" not in reply.text


def test_downloads_are_attachments_that_are_never_sniffed(server):
    attacker = Attacker(server["url"])
    planted = server["saves"] / "run-a" / "exports" / "merged" / "evil.html"
    reply = attacker.http.get(f"/gradio_api/file={planted}")
    assert reply.status_code == 200
    assert reply.headers["content-disposition"].startswith("attachment")
    assert reply.headers["x-content-type-options"] == "nosniff"


# ---- tampered names to every event that takes one ------------------------------------------------
NAME_CONTROLS = [
    "train-run",
    "export-run",
    "export-delete-name",
    "chat-left",
    "chat-right",
    "eval-target",
    "eval-dataset",
    "data-dataset",
    "field-dataset",
    "field-dataset_dir",
    "exp-runs",
    "gallery-run",
]


@pytest.mark.slow  # ~90 s: hundreds of requests, one per event, name and escape
def test_tampered_names_are_refused_by_every_event(server):
    """Each event that reads a name control gets the classic escapes; the first event of each
    control gets the whole list."""
    attacker = Attacker(server["url"])
    present = [e for e in NAME_CONTROLS if any(c["props"].get("elem_id") == e for c in attacker.components.values())]
    assert len(present) >= 10, present
    every = tampered_names(server["outside"])
    classic = [every[0], every[3], every[7]]  # climbing, absolute, through a symlink
    calls = 0
    for elem_id in present:
        multiselect = attacker.component(elem_id)["props"].get("multiselect")
        for index, dep in enumerate(attacker.events_taking(elem_id)):
            if dep["api_name"] in ("on_start",):
                continue  # Start is covered below (each refusal there is checked on disk too)
            for name in every if index == 0 else classic:
                result = attacker.call(dep, **{elem_id: [name] if multiselect else name})
                calls += 1
                assert SECRET not in result["text"], (elem_id, dep["api_name"], name)
    assert calls > 100
    assert (server["saves"] / "run-a" / "exports" / "merged" / "evil.html").exists()  # no delete went astray


def test_start_refuses_a_dataset_or_folder_outside_and_creates_no_run(server):
    attacker = Attacker(server["url"])
    start = attacker.event("train-start", "click")

    def runs():
        return sorted(p.name for p in server["saves"].iterdir() if not p.name.startswith("."))

    runs_before = runs()
    for values in (
        {"field-dataset": ["abs"]},
        {"field-dataset": ["../outside/secret"]},
        {"field-dataset_dir": str(server["outside"])},
        {"field-dataset_dir": "../outside"},
        {"field-output_dir": str(server["outside"] / "run")},
        {"field-resume_from_checkpoint": str(server["outside"])},
        {"field-model_name_or_path": str(server["outside"])},
        {"field-model_name_or_path": "../../outside"},
    ):
        result = attacker.call(start, **values)
        assert refused(result), values
    assert runs() == runs_before
    assert not (server["outside"] / "run").exists()


# ---- uploads and the registry ----------------------------------------------------------------------
def test_an_upload_cannot_take_the_registry_name(server):
    attacker = Attacker(server["url"])
    evil = json.dumps({"stolen": {"file_name": str(server["outside"] / "secret.json")}}).encode()
    paths = attacker.upload(("dataset_info.json", evil)).json()
    register = attacker.event("data-register", "click")
    registry = server["data"] / "uploads" / "dataset_info.json"
    before = registry.read_text()
    for name in ("dataset_info", "DATASET_INFO", "dataset_info.json"):
        result = attacker.call(register, **{"data-upload": file_data(paths[0]), "data-name": name})
        assert refused(result) and ("reserved" in result["text"] or "must" in result["text"])
    assert registry.read_text() == before


def test_a_browser_cannot_name_a_server_file_as_its_upload(server):
    attacker = Attacker(server["url"])
    check = attacker.event("data-check", "click")
    register = attacker.event("data-register", "click")
    for path in (
        str(server["outside"] / "secret.json"),
        f"{server['saves']}/../../outside/secret.json",
        f"{server['saves']}/link-secret.json",
    ):
        for dep in (check, register):
            result = attacker.call(dep, **{"data-upload": file_data(path), "data-name": "grab"})
            assert refused(result)
    assert "grab" not in json.loads((server["data"] / "uploads" / "dataset_info.json").read_text())


def test_registry_entries_that_lead_out_are_not_offered_and_not_read(server):
    attacker = Attacker(server["url"])
    offered = [value for _, value in attacker.component("data-dataset")["props"]["choices"]]
    assert "identity" in offered  # a shipped dataset: the shipped folder is part of the workspace
    from workbench.confine import is_inside
    from workbench.data.registry import SHIPPED_DIR

    assert any(is_inside(SHIPPED_DIR, root) for root in server["demo"].wb_context.workspace.roots())
    assert not {"abs", "climb", "linked", "sneaky"} & set(offered)
    from workbench.data import DataError, get_entry

    for name in ("abs", "climb", "linked", "sneaky"):
        with pytest.raises(DataError) as err:
            get_entry(server["data"], name)
        assert "must stay inside the workspace" in str(err.value)
        assert str(server["outside"]) not in str(err.value)


def test_one_request_cannot_carry_more_than_the_total_cap(server, monkeypatch):
    from workbench.ui import guard

    attacker = Attacker(server["url"])
    monkeypatch.setattr(guard, "MAX_REQUEST_MB", 1)
    piece = b"[" + b" " * 700_000 + b"]"
    assert attacker.upload(("a.json", piece)).status_code == 200  # one file under the cap
    reply = attacker.upload(("a.json", piece), ("b.json", piece))  # two: over it in all
    assert reply.status_code == 413 and "limit" in reply.text


def test_uploads_stop_when_the_disk_is_nearly_full(server, monkeypatch):
    from workbench.ui import guard

    attacker = Attacker(server["url"])
    monkeypatch.setattr(guard, "MIN_FREE_MB", 1e12)
    reply = attacker.upload(("a.json", b"[]"))
    assert reply.status_code == 507 and "disk" in reply.text


def test_leftover_uploads_are_removed_at_start_up_and_after_registering(server):
    assert not server["stale"].exists()
    attacker = Attacker(server["url"])
    rows = json.dumps([{"instruction": "hi", "output": "hello"}] * 3).encode()
    path = attacker.upload(("mine.json", rows)).json()[0]
    assert Path(path).exists()
    result = attacker.call(
        attacker.event("data-register", "click"), **{"data-upload": file_data(path), "data-name": "mine"}
    )
    assert result["success"] and "Registered" in result["text"]
    assert not Path(path).exists()  # copied into the dataset folder; the upload itself is gone
    assert (server["data"] / "uploads" / "mine.json").exists()


# ---- inputs with a budget ----------------------------------------------------------------------------
def test_a_yaml_alias_bomb_is_refused_at_once(server):
    attacker = Attacker(server["url"])
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")
    )
    path = attacker.upload(("bomb.yaml", bomb.encode())).json()[0]
    started = time.monotonic()
    result = attacker.call(attacker.event("train-load-config", "upload"), **{"train-load-config": file_data(path)})
    assert "aliases" in result["text"]
    assert time.monotonic() - started < 60  # generous: it is refused, not expanded (measured in docs)
    big = b"learning_rate: 0.001\n" + b"# padding\n" * 120_000
    path = attacker.upload(("big.yaml", big)).json()[0]
    result = attacker.call(attacker.event("train-load-config", "upload"), **{"train-load-config": file_data(path)})
    assert "at most 1 MB" in result["text"]


def test_deep_nesting_gives_a_message_naming_the_file(server):
    attacker = Attacker(server["url"])
    deep = ("[" * 200_000 + "]" * 200_000).encode()
    path = attacker.upload(("deep.json", deep)).json()[0]
    result = attacker.call(attacker.event("data-check", "click"), **{"data-upload": file_data(path)})
    assert "deep.json" in result["text"] and "nested too deeply" in result["text"]
    assert "RecursionError" not in result["text"]


def test_a_large_upload_previews_a_labelled_sample(server):
    attacker = Attacker(server["url"])
    rows = "".join(json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) + "\n" for i in range(20_000))
    path = attacker.upload(("many.jsonl", rows.encode())).json()[0]
    result = attacker.call(attacker.event("data-check", "click"), **{"data-upload": file_data(path)})
    assert result["success"]
    assert "sampled: first 2000 rows of 20000" in result["text"]


# ---- the rule itself, without a server -------------------------------------------------------------
def test_confine_resolves_symlinks_and_names_the_key(tmp_path):
    from workbench.confine import ConfinementError, Workspace, child, confine, run_folder

    inside, outside = tmp_path / "ws", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    (inside / "ok.json").write_text("[]")
    (inside / "link").symlink_to(outside)
    assert confine("ok.json", "file_name", [inside], base=inside) == (inside / "ok.json").resolve()
    messages = set()
    for value in ("../outside", str(outside), "link/x.json", "%2e%2e/outside", "", "a\x00b", str(outside / "nope")):
        try:
            confine(value, "file_name", [inside], base=inside)
            assert value == "%2e%2e/outside"  # a literal folder name, inside
        except ConfinementError as err:
            assert str(err).startswith("'file_name'") and str(outside) not in str(err)
            messages.add(str(err))
    assert len(messages) <= 2  # existing and missing paths read the same
    for name in ("..", ".hidden", "a/../..", "link", "/abs", "a/b/c"):
        with pytest.raises(ConfinementError, match="'run'"):
            run_folder(inside, name)
    assert child(inside, "ok.json", "export") == inside / "ok.json"
    workspace = Workspace(saves=inside, dataset_dirs=(inside,))
    assert workspace.model("SmolLM2-135M-Instruct") == "SmolLM2-135M-Instruct"
    assert workspace.model("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"  # a hub id
    for local in (str(outside), "../outside", "~/models", "/etc"):
        with pytest.raises(ConfinementError, match="--allow-local-models"):
            workspace.model(local)
    assert Workspace(saves=inside, dataset_dirs=(inside,), allow_local_models=True).model(str(outside))


def test_the_cli_keeps_accepting_any_model_folder(tmp_path):
    """Confinement is the browser's: a config the owner runs names any folder it likes."""
    from workbench.config import RunConfig, from_dict

    cfg = from_dict({"model_name_or_path": str(tmp_path / "my-model")})
    assert isinstance(cfg, RunConfig) and cfg.model_name_or_path == str(tmp_path / "my-model")


def test_yaml_budget_and_types(tmp_path):
    from workbench.config import ConfigError, load_config

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("a: &a [x, x]\nb: [*a, *a]\n")
    with pytest.raises(ConfigError, match="aliases"):
        load_config(bomb)
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(deep)
    assert "deep.yaml" in str(err.value)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("dataset: [[a, b], c]\nlearning_rate: {x: 1}\n")
    with pytest.raises(ConfigError, match="'dataset' must be text") as err:
        load_config(wrong)
    assert "'learning_rate' must be a number" in str(err.value)


def test_preview_sample_is_labelled_and_registering_checks_every_row(tmp_path, default_model_dir):
    from workbench.config import RunConfig
    from workbench.data import DataError, add_dataset
    from workbench.data.inspect import inspect
    from workbench.models import load_tokenizer

    rows = [json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) for i in range(5000)]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(rows + ["{broken"]) + "\n")
    result = inspect(RunConfig(), load_tokenizer(str(default_model_dir)), str(path), sample=100)
    assert result.sampled == (100, 5001) and result.summary()["sampled"] == (100, 5001)
    assert len(result.rows) == 100
    with pytest.raises(DataError, match="line 5001"):  # the broken last row is found when registering
        add_dataset(tmp_path / "data", "rows", path)
