"""The reader on Ray Serve: POST an image, get its reading as JSON.

    POST /read     body: the image file's bytes, Content-Type image/* (or application/octet-stream)
                   -> 200 {"text", "probability", "top", "mismatch", "note"}
                   -> 4xx {"error": "..."}: not an image, empty, too large, wrong content type
    GET  /healthz  -> 200 {"status": "ok"} while the replica runs (liveness)
    GET  /ready    -> 200 {"status": "ready", "model": ..., "style": ..., "recipe": ...} once the model is loaded

Each replica holds one `Reader` (trainer/reader.py). Requests are decoded and checked in the replica's request
handler (so one bad image fails alone), then gathered by `@serve.batch` into one `Reader.read` call of up to
`max_batch` images (run in a thread, so health checks are answered during a batch). Ray Serve's own
`/-/healthz` and `/-/routes` on the proxy say whether the proxy and the application are up; the controller
replaces a replica whose actor dies or whose `check_health` fails.
"""


import asyncio
from dataclasses import replace

MAX_BODY_BYTES = 8 << 20            # an image file larger than this is refused before it is decoded
CONTENT_TYPES = ("image/", "application/octet-stream")
APP_NAME = "synthstream-reader"
REQUEST_TIMEOUT_S = 30.0            # the proxy answers 408 rather than hold a request whose replica died mid-read


class BadRequest(ValueError):
    """A request the server refuses: the HTTP status and one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode_image(body: bytes, content_type: str | None):
    """The PIL image in a request body, checked before it is decoded in full. Raises BadRequest."""
    from trainer.batch_read import TooLarge, image_from_bytes

    kind = (content_type or "").split(";")[0].strip().lower()
    if not kind.startswith(CONTENT_TYPES):
        raise BadRequest(415, f"content type {kind or 'none'!r}: send the image file's bytes as image/* "
                              f"(e.g. image/png)")
    if not body:
        raise BadRequest(400, "empty body: send the image file's bytes")
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(413, f"body of {len(body)} bytes: at most {MAX_BODY_BYTES} accepted")
    try:
        return image_from_bytes(body)
    except TooLarge as e:
        raise BadRequest(413, str(e)) from None
    except ValueError as e:
        raise BadRequest(400, str(e)) from None


def build_app(checkpoint: str, *, replicas: int = 1, replica_cpus: float = 1.0, max_batch: int = 16,
              batch_wait_s: float = 0.01, overrides: dict | None = None):
    """The Serve application (`serve.run(build_app(...))`)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from ray import serve
    from starlette.exceptions import HTTPException

    api = FastAPI(title="synthstream reader", docs_url=None, redoc_url=None, openapi_url=None)

    @api.exception_handler(HTTPException)
    async def http_error(request, exc):                 # 404, 405...: the same one-line JSON error
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @api.exception_handler(RequestValidationError)
    async def validation_error(request, exc):
        return JSONResponse({"error": "invalid request"}, status_code=422)

    @serve.deployment(name="Reader", num_replicas=replicas, ray_actor_options={"num_cpus": replica_cpus},
                      max_ongoing_requests=4 * max_batch, health_check_period_s=5, health_check_timeout_s=30)
    @serve.ingress(api)
    class ReaderDeployment:
        def __init__(self) -> None:
            import torch

            from trainer.reader import load_reader

            self.reader = load_reader(checkpoint, **(overrides or {}))
            self.threads, self._torch = max(1, int(replica_cpus)), torch

        def _read(self, arrays: list) -> list:
            self._torch.set_num_threads(self.threads)   # in the reading thread (OpenMP's count is per thread)
            return self.reader.read(arrays)

        def check_health(self) -> None:             # Serve's replica health check: the model is still there
            if self.reader is None:
                raise RuntimeError("no reader loaded")

        @api.get("/healthz")
        async def healthz(self):
            return {"status": "ok"}

        @api.get("/ready")
        async def ready(self):
            r = self.reader
            return {"status": "ready", "model": r.name, "style": r.style.name, "recipe": r.recipe.method}

        @api.post("/read")
        async def read(self, request: Request):
            body = await request.body()
            try:
                image = decode_image(body, request.headers.get("content-type"))
                grey, notes = self.reader.images([image])
            except BadRequest as e:
                return JSONResponse({"error": str(e)}, status_code=e.status)
            except Exception as e:  # noqa: BLE001 - any image the reader cannot take is this request's fault
                return JSONResponse({"error": f"cannot read the image: {str(e).splitlines()[0][:160]}"},
                                    status_code=400)
            reading = await self.read_batch((grey[0], notes[0]))
            return reading

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=batch_wait_s)
        async def read_batch(self, items: list[tuple]) -> list[dict]:
            readings = await asyncio.to_thread(self._read, [a for a, _ in items])
            return [replace(r, note=note).to_json() for r, (_, note) in zip(readings, items)]

    return ReaderDeployment.bind()


def start(checkpoint: str, *, host: str = "127.0.0.1", port: int = 8000, replicas: int = 1,
          replica_cpus: float = 1.0, max_batch: int = 16, address: str | None = None,
          overrides: dict | None = None) -> str:
    """Ray (cluster/local.py), Serve's proxy on host:port, the reader application; returns its base URL once
    every replica is ready."""
    import logging

    from ray import serve

    from cluster.local import connect

    connect(address)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)          # the command prints its own line
    serve.start(http_options={"host": host, "port": port, "request_timeout_s": REQUEST_TIMEOUT_S},
                logging_config={"log_level": "WARNING"})
    serve.run(build_app(checkpoint, replicas=replicas, replica_cpus=replica_cpus, max_batch=max_batch,
                        overrides=overrides), name=APP_NAME, route_prefix="/")
    return f"http://{host if ':' not in host else f'[{host}]'}:{port}"


def replica_actors() -> list:
    """The running replicas' actor handles (to test that a killed one is replaced)."""
    import ray

    return [ray.get_actor(a["name"], namespace=a["namespace"])
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith("SERVE_REPLICA::") and APP_NAME in a["name"]]


def app(args: dict):
    """Serve's application builder, for a Serve config file or a RayService's serveConfigV2:
    `import_path: trainer.serve:app` with `args: {checkpoint: NAME_OR_PATH, max_batch: 16, replica_cpus: 1}`
    (replicas are set in the config's `deployments`)."""
    known = {"checkpoint", "max_batch", "replica_cpus", "batch_wait_s"}
    unknown = set(args) - known
    if unknown or "checkpoint" not in args:
        raise ValueError(f"args {sorted(args)}: need checkpoint, may have {sorted(known - {'checkpoint'})}")
    return build_app(str(args["checkpoint"]), max_batch=int(args.get("max_batch", 16)),
                     replica_cpus=float(args.get("replica_cpus", 1.0)),
                     batch_wait_s=float(args.get("batch_wait_s", 0.01)))
