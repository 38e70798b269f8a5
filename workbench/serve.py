"""`workbench serve`: an OpenAI-compatible HTTP API on the Chat tab's engine.

GET /v1/models lists the base model(s), every finished run and every complete checkpoint
(`RUN/checkpoint-N`), plus reward-model runs (which answer POST /v1/score). POST
/v1/chat/completions and /v1/completions generate, streamed by server-sent events or not; the
`model` field picks what answers. All generation goes through one `ChatEngine`: one copy of a base
shared by its adapters, one generation at a time, the others queued.

Loopback only unless an API key is set; a request without the key gets 401. Errors have
OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import Request

from .chat import (
    BASE_PREFIX,
    ChatEngine,
    GenerationSettings,
    StreamUpdate,
    list_targets,
    not_generative_reason,
    resolve_target,
)
from .config import DEFAULT_MODEL
from .runs import FINAL_DIR, read_config, saves_root

API_KEY_ENV = "WORKBENCH_API_KEY"
DEFAULT_MAX_TOKENS = 256
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"  # `workbench serve` with its default host and port


class ApiError(Exception):
    """An error the client gets as OpenAI-shaped JSON with this HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond this machine without an API key."""
    if not is_loopback(host) and not api_key:
        raise ValueError(
            f"--host {host} is reachable from other machines: set an API key "
            f"(--api-key or the {API_KEY_ENV} environment variable)"
        )


# ---- what can be served ------------------------------------------------------------------------
def reward_runs(root: Path) -> list[str]:
    """Finished reward-model runs (stage rm) under the saves folder."""
    if not root.is_dir():
        return []
    return [
        p.name
        for p in sorted(root.iterdir())
        if p.is_dir()
        and not p.name.startswith(".")
        and (p / FINAL_DIR).is_dir()
        and read_config(p).get("stage") == "rm"
    ]


class Catalog:
    """Model names the API knows, read from the saves folder on each request (runs come and go)."""

    def __init__(self, root: Path, base_model: str):
        self.root, self.base_model = Path(root), base_model

    def generators(self) -> list[str]:
        return list_targets(self.root, self.base_model)

    def scorers(self) -> list[str]:
        return reward_runs(self.root)

    def names(self) -> list[str]:
        return self.generators() + self.scorers()

    def unknown(self, name: Any) -> ApiError:
        names = self.names()
        return ApiError(
            404,
            f"The model {name!r} does not exist. Models served here: " + ", ".join(names),
            param="model",
            code="model_not_found",
        )

    def target(self, name: Any):
        """The chat target for a model name; 404 for a name not served, 400 for a reward model."""
        if not isinstance(name, str) or not name:
            raise ApiError(400, "model is required: one of GET /v1/models", param="model")
        if name in self.scorers():
            reason = not_generative_reason(self.root / name)
            raise ApiError(400, f"{reason}; it answers POST /v1/score", param="model", code="model_not_generative")
        if name not in self.generators() and not name.startswith(BASE_PREFIX):
            raise self.unknown(name)
        try:
            return resolve_target(name, self.root)
        except ValueError as err:
            raise ApiError(404, str(err), param="model", code="model_not_found") from None


# ---- request parsing ---------------------------------------------------------------------------
def _number(body: dict, key: str, default, kind=float, low=None, high=None, low_open=False):
    value = body.get(key)
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (kind is int and not float(value).is_integer())
    ):
        raise ApiError(400, f"{key} must be a {'whole number' if kind is int else 'number'}, got {value!r}", param=key)
    value = kind(value)
    if low is not None and (value < low or (low_open and value == low)):
        raise ApiError(400, f"{key} must be {'above' if low_open else 'at least'} {low}, got {value!r}", param=key)
    if high is not None and value > high:
        raise ApiError(400, f"{key} must be at most {high}, got {value!r}", param=key)
    return value


def settings_from(body: dict) -> GenerationSettings:
    """OpenAI sampling fields → the engine's settings (OpenAI's defaults: temperature 1, top_p 1)."""
    if _number(body, "n", 1, int, 1) != 1:
        raise ApiError(400, "n must be 1: one choice per request", param="n")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    seed = body.get("seed")
    return GenerationSettings(
        max_new_tokens=_number({"max_tokens": max_tokens}, "max_tokens", DEFAULT_MAX_TOKENS, int, 1),
        temperature=_number(body, "temperature", 1.0, float, 0, 2),
        top_p=_number(body, "top_p", 1.0, float, 0, 1, low_open=True),
        top_k=0,
        repetition_penalty=1.0,
        seed=_number(body, "seed", 0, int, 0) if seed is not None else secrets.randbelow(2**31),
    )


def stops_from(body: dict) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) and s for s in stops):
        raise ApiError(400, "stop must be a non-empty string or a list of up to 4 of them", param="stop")
    return stops


def messages_from(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list of {role, content}", param="messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant"):
            raise ApiError(400, f"messages[{i}].role must be system, user or assistant", param=f"messages[{i}].role")
        content = m.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if not isinstance(content, str):
            raise ApiError(400, f"messages[{i}].content must be text", param=f"messages[{i}].content")
        out.append({"role": "system" if m["role"] == "developer" else m["role"], "content": content})
    return out


def prompt_from(body: dict) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise ApiError(400, "prompt must be a non-empty string (one prompt per request)", param="prompt")
    return prompt


# ---- generation --------------------------------------------------------------------------------
class _Stopper:
    """Cuts the text at the first stop string and holds back a tail that may begin one."""

    def __init__(self, stops: list[str]):
        self.stops = stops
        self.hold = max((len(s) for s in stops), default=1) - 1

    def cut(self, text: str) -> tuple[str, bool]:
        found = [text.index(s) for s in self.stops if s in text]
        if found:
            return text[: min(found)], True
        return text, False

    def safe(self, text: str) -> str:
        return text[: len(text) - self.hold] if self.hold else text


def generate(
    engine: ChatEngine,
    target,
    settings: GenerationSettings,
    stops: list[str],
    messages: list[dict] | None = None,
    prompt: str | None = None,
    halt: threading.Event | None = None,
) -> Iterator[tuple[str, StreamUpdate, str | None]]:
    """Yield (new text, engine update, finish reason or None) until the reply is complete."""
    stopper, stop = _Stopper(stops), halt or threading.Event()
    sent, update, hit = 0, None, False
    for update in engine.stream(target, messages or [], settings, stop, prompt=prompt):
        text, hit = stopper.cut(update.text)
        if hit:
            stop.set()
        ready = text if (hit or update.done) else stopper.safe(text)
        if len(ready) > sent:
            yield ready[sent:], update, None
            sent = len(ready)
        if hit:
            break
    if update is None:
        return
    reason = "stop" if hit or update.tokens < settings.max_new_tokens else "length"
    yield "", update, reason


# ---- the app -----------------------------------------------------------------------------------
def build_app(
    root: Path | None = None,
    base_model: str = DEFAULT_MODEL,
    api_key: str | None = None,
    engine: ChatEngine | None = None,
):
    """The FastAPI app. `engine` may be shared with the UI (one copy of the weights)."""
    from fastapi import FastAPI
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    catalog = Catalog(Path(root or saves_root()), base_model)
    engine = engine or ChatEngine()
    scorers: dict[str, Any] = {}
    app = FastAPI(title="Workbench API", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine, app.state.catalog = engine, catalog

    @app.exception_handler(ApiError)
    async def _api_error(request, err: ApiError):
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(HTTPException)
    async def _http_error(request, err: HTTPException):
        kind = "not_found_error" if err.status_code == 404 else "invalid_request_error"
        return JSONResponse(
            ApiError(err.status_code, f"{request.method} {request.url.path}: {err.detail}", kind).body(),
            status_code=err.status_code,
        )

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request, err):
        return JSONResponse(ApiError(400, f"bad request: {err}").body(), status_code=400)

    @app.middleware("http")
    async def _authorize(request: Request, call_next):
        if api_key:
            sent = request.headers.get("authorization", "")
            token = sent[7:] if sent.lower().startswith("bearer ") else ""
            if not hmac.compare_digest(token.encode(), api_key.encode()):
                err = ApiError(
                    401,
                    "missing or wrong API key: send the header 'Authorization: Bearer KEY'",
                    "authentication_error",
                    code="invalid_api_key",
                )
                return JSONResponse(err.body(), status_code=401)
        return await call_next(request)

    async def read_body(request: Request) -> dict:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as err:
            raise ApiError(400, f"the request body is not JSON: {err}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        return body

    @app.get("/v1/models")
    async def models():
        created = int(time.time())
        data = [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "workbench",
                "kind": "base" if name.startswith(BASE_PREFIX) else "run",
            }
            for name in catalog.generators()
        ]
        data += [
            {"id": name, "object": "model", "created": created, "owned_by": "workbench", "kind": "reward"}
            for name in catalog.scorers()
        ]
        return {"object": "list", "data": data}

    @app.get("/v1/models/{name:path}")
    async def model(name: str):
        if name not in catalog.names():
            raise catalog.unknown(name)
        return {"id": name, "object": "model", "created": int(time.time()), "owned_by": "workbench"}

    async def completion(body: dict, chat: bool):
        target = catalog.target(body.get("model"))
        settings = settings_from(body)
        stops = stops_from(body)
        messages = messages_from(body) if chat else None
        prompt = None if chat else prompt_from(body)
        name, created = body["model"], int(time.time())
        ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        halt = threading.Event()
        pieces = generate(engine, target, settings, stops, messages, prompt, halt)

        def usage(update: StreamUpdate) -> dict:
            return {
                "prompt_tokens": update.prompt_tokens,
                "completion_tokens": update.tokens,
                "total_tokens": update.prompt_tokens + update.tokens,
            }

        if not body.get("stream"):

            def run() -> tuple[str, StreamUpdate, str]:
                text, last, reason = "", None, "stop"
                for item in pieces:  # each item: (new text, the update so far, why it stopped)
                    text += item[0]
                    _, last, reason = item
                return text, last, reason or "stop"

            try:
                text, last, reason = await run_in_threadpool(run)
            except ValueError as err:
                raise ApiError(400, str(err)) from None
            finally:
                halt.set()
            if chat:
                choice = {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": reason,
                }
            else:
                choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
            return {
                "id": ident,
                "object": "chat.completion" if chat else "text_completion",
                "created": created,
                "model": name,
                "choices": [choice],
                "usage": usage(last),
            }

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(piece: str | None, reason: str | None, role: bool = False) -> str:
            if chat:
                delta = {"role": "assistant", "content": ""} if role else ({"content": piece} if piece else {})
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
            else:
                choice = {"index": 0, "text": piece or "", "logprobs": None, "finish_reason": reason}
            data = {"id": ident, "object": kind, "created": created, "model": name, "choices": [choice]}
            return f"data: {json.dumps(data)}\n\n"

        async def events():
            try:
                if chat:
                    yield chunk(None, None, role=True)
                last = None
                while True:
                    item = await run_in_threadpool(next, pieces, None)
                    if item is None:
                        break
                    piece, last, reason = item
                    if piece or reason:
                        yield chunk(piece, reason)
                if include_usage and last is not None:
                    data = {
                        "id": ident,
                        "object": kind,
                        "created": created,
                        "model": name,
                        "choices": [],
                        "usage": usage(last),
                    }
                    yield f"data: {json.dumps(data)}\n\n"
            except ValueError as err:  # a model that cannot load: say so inside the stream
                yield f"data: {json.dumps(ApiError(400, str(err)).body())}\n\n"
            finally:
                halt.set()  # a client that went away stops its generation
                await run_in_threadpool(pieces.close)
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await completion(await read_body(request), chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await completion(await read_body(request), chat=False)

    @app.post("/v1/score")
    async def score(request: Request):
        body = await read_body(request)
        name = body.get("model")
        if name not in catalog.scorers():
            if name in catalog.generators():
                raise ApiError(
                    400,
                    f"{name} is not a reward model (stage rm): only reward models score",
                    param="model",
                    code="model_not_reward",
                )
            raise catalog.unknown(name)
        prompt, responses = body.get("prompt"), body.get("responses")
        if isinstance(prompt, list):
            prompt = messages_from({"messages": prompt})
        elif not isinstance(prompt, str):
            raise ApiError(400, "prompt must be a string or a list of messages", param="prompt")
        if not isinstance(responses, list) or not responses or not all(isinstance(r, str) for r in responses):
            raise ApiError(400, "responses must be a non-empty list of strings", param="responses")

        def run() -> list[float]:
            from .preference import RewardModel

            with engine.exclusive():  # one model computes at a time, generation or scoring
                if name not in scorers:
                    scorers[name] = RewardModel(catalog.root / name)
                return [scorers[name].score(prompt, r) for r in responses]

        values = await run_in_threadpool(run)
        return {
            "object": "list",
            "model": name,
            "data": [{"object": "score", "index": i, "score": v} for i, v in enumerate(values)],
        }

    return app


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    saves: str | None = None,
    base_model: str = DEFAULT_MODEL,
) -> None:
    """Run the API until interrupted."""
    import uvicorn

    api_key = api_key or os.environ.get(API_KEY_ENV) or None
    check_bind(host, api_key)
    app = build_app(Path(saves) if saves else None, base_model, api_key)
    uvicorn.run(app, host=host, port=port, log_level="info")


def snippets(base_url: str, model: str, key_env: str = API_KEY_ENV) -> tuple[str, str]:
    """(curl, Python) that call `model` on a server at `base_url` (…/v1)."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 128})
    curl = (
        f"curl {base_url}/chat/completions \\\n  -H 'Content-Type: application/json' \\\n"
        f"  -H \"Authorization: Bearer ${key_env}\" \\\n  -d '{body}'"
    )
    python = (
        "import os\nfrom openai import OpenAI\n\n"
        f'client = OpenAI(base_url={base_url!r}, api_key=os.environ.get({key_env!r}, "none"))\n'
        f"reply = client.chat.completions.create(\n    model={model!r},\n"
        '    messages=[{"role": "user", "content": "Hello!"}],\n    max_tokens=128,\n)\n'
        "print(reply.choices[0].message.content)\n"
    )
    return curl, python
