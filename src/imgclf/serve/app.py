"""The REST service: ``create_app`` builds the FastAPI app around an :class:`InferenceService`.

Routes: ``POST /predict`` (multipart files or one raw image body), ``POST /explain`` (the same
bodies, one image: its class activation map as a PNG overlay or as numbers), ``POST /score`` (the 2017
sample's contract), the Open Inference Protocol under ``/v2``, ``GET /metrics`` and the
OpenAPI docs at ``/docs`` (served from local files, no CDN). Middleware, outermost first:
metrics, token auth (when a token is set; else the Host check against DNS rebinding), body limit; they cover routes added later too, such
as those :func:`imgclf.ui.mount_ui` adds. The service (predictor, batcher) is
``app.state.imgclf``; its ``predictor`` is None while the model loads or when the app runs
without one. Errors are answered as :mod:`imgclf.serve.errors` says.
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from .. import __version__
from ..config.schema import check_section
from ..config.settings import ServeConfig
from ..util.errors import ImgclfError, InvalidRequest, NotFound
from . import protocol as p
from .auth import HostCheckMiddleware, TokenAuthMiddleware
from .errors import ERROR_RESPONSES, STATUS, ErrorBody, Unavailable, UnsupportedMediaType, install_error_handlers
from .keeper import Keeper, KeepPlace, keep_place
from .limits import BodyLimitMiddleware
from .metrics import Metrics, MetricsMiddleware
from .service import InferenceService

_RAW_IMAGE = {"schema": {"type": "string", "format": "binary"}}
_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "description": "Image files as multipart field(s) `files`, or one image file as the raw body.",
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "required": ["files"], "properties": {
                "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
            "image/jpeg": _RAW_IMAGE, "image/png": _RAW_IMAGE, "application/octet-stream": _RAW_IMAGE,
        },
    }
}


async def _read_upload(request: Request, max_files: int, route: str) -> tuple[list[bytes], list[str | None]]:
    """Images of a ``route`` request (/predict, /explain): every file part of a multipart form, or the raw body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        try:
            async with request.form(max_files=max_files, max_fields=max_files, max_part_size=64 * 1024) as form:
                files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
                return [await f.read() for f in files], [f.filename for f in files]
        except (MultiPartException, HTTPException) as e:
            if isinstance(e, HTTPException) and e.status_code != 400:
                raise  # e.g. the body limit's 413
            message = e.message if isinstance(e, MultiPartException) else e.detail
            raise InvalidRequest(f"multipart form refused: {message}", reason="bad_multipart") from None
    if ctype == "application/json":
        raise UnsupportedMediaType(f"{route} takes image files (multipart/form-data or a raw image body), not JSON"
                                   + ("; JSON with base64 goes to /score or /v2/models/{name}/infer" if route == "/predict" else ""))
    # Any other type is the image itself: `curl --data-binary @x.jpg` labels it a urlencoded form.
    return [await request.body()], [None]


def create_app(predictor: Any | None, serve_cfg: ServeConfig, *, token: str | None = None,
               keep_into: KeepPlace | None = None) -> FastAPI:
    """The service app for ``predictor`` (an :class:`imgclf.inference.predict.Predictor`).

    Without one, the model routes answer 404 and /predict 503 until a predictor is loaded with
    ``app.state.imgclf.load_in_background(loader)`` (503 "loading" meanwhile), if ever.
    ``token`` protects every route but the health probes (see :mod:`imgclf.serve.auth`), routes
    added to the app later included: :func:`imgclf.ui.create_ui_app` adds the web UI's that way.
    With ``serve.keep_inputs`` the answered images are kept in ``keep_into`` (:func:`imgclf.serve.keeper.keep_place`;
    default: ``serve.keep_dir``, which must then be set).
    """
    check_section("serve", serve_cfg)  # a ServeConfig built in code has not met load_config's validator
    if token and not (token.isascii() and token.isprintable()):
        raise ImgclfError("the token must be printable ASCII (it travels in an HTTP header)",
                          hint="choose a token of letters, digits and punctuation, e.g. from `openssl rand -hex 16`")
    cfg = serve_cfg
    metrics = Metrics()
    service = InferenceService(cfg, metrics)
    if cfg.keep_inputs:
        service.keeper = Keeper(keep_into or keep_place(cfg), cfg, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if predictor is not None:
            service.install(predictor)
        if service.keeper is not None:
            service.keeper.start()
        yield
        service.draining = True
        await run_in_threadpool(service.close)

    app = FastAPIOffline(title="imgclf", version=__version__, redoc_url=None, lifespan=lifespan,
                         description="Image classification service: /predict, the 2017 sample's /score, "
                                     "the Open Inference Protocol (v2) and Prometheus /metrics.")
    app.state.imgclf = service
    install_error_handlers(app, metrics)
    app.add_middleware(BodyLimitMiddleware, max_bytes=int(cfg.max_body_mb * 1024 * 1024))
    if token:
        app.add_middleware(TokenAuthMiddleware, token=token)
    else:
        app.add_middleware(HostCheckMiddleware, allowed=list(cfg.allowed_hosts))
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes_of=app)

    _add_v2_routes(app, service, cfg)
    _add_predict_routes(app, service, cfg)
    _add_explain_route(app, service, cfg)

    @app.get("/metrics", tags=["metrics"], response_class=Response)
    def prometheus_metrics() -> Response:
        """Prometheus text format: requests, latency, batch sizes, queue depth."""
        return Response(metrics.render(), media_type=metrics.content_type)

    return app


def _add_health_routes(app: FastAPI, service: InferenceService) -> None:
    """The Open Inference Protocol's liveness and readiness probes (GET and HEAD)."""

    @app.get("/v2/health/live", tags=["health"])
    def live() -> dict[str, bool]:
        """Liveness: 200 as soon as the server answers."""
        return {"live": True}

    @app.get("/v2/health/ready", tags=["health"], responses={STATUS[Unavailable]: {"model": ErrorBody}})
    def ready() -> Any:
        """Readiness: 200 once the model is loaded, 503 before that and while shutting down."""
        if service.ready:  # ready, and says so when the model's run did not finish (see imgclf.rundir.state)
            incomplete = getattr(service.predictor, "run_incomplete", None)
            return {"ready": True, **({"run_incomplete": incomplete} if incomplete else {})}
        why = ("shutting down" if service.draining else "the model is loading" if service.loading
               else f"the model failed to load: {service.load_error}" if service.load_error else "no model loaded")
        raise Unavailable(f"not ready: {why}", reason="not_ready")

    for path, probe in (("/v2/health/live", live), ("/v2/health/ready", ready)):  # load balancers and `curl -I` probe with HEAD
        app.add_api_route(path, probe, methods=["HEAD"], include_in_schema=False)


def _add_v2_routes(app: FastAPI, service: InferenceService, cfg: ServeConfig) -> None:
    """The Open Inference Protocol (KServe v2 REST): health, metadata, readiness, inference."""
    _add_health_routes(app, service)
    # The schema names the one model and version (so fuzzers reach the model); any other name
    # still gets the protocol's 404, not a validation error.
    name_param = PathParam(json_schema_extra={"enum": [cfg.model_name]})
    version_param = PathParam(json_schema_extra={"enum": [p.MODEL_VERSION]})

    def model(name: str, version: str | None = None):
        """The predictor behind ``name``: 404 for other names and versions, 503 while loading."""
        if name != cfg.model_name or (version is not None and version != p.MODEL_VERSION):
            what = f"model {name!r}" + (f" version {version!r}" if version is not None else "")
            raise NotFound(f"unknown {what}; this server serves {cfg.model_name!r} version {p.MODEL_VERSION}",
                           reason="unknown_model")
        if service.predictor is None and not service.loading:
            raise NotFound(f"model {name!r} is not loaded on this server", reason="no_model")
        return service.require_model()

    @app.get("/v2", tags=["v2"], response_model=p.ServerMetadata)
    def server_metadata() -> p.ServerMetadata:
        """Server metadata (Open Inference Protocol)."""
        return p.ServerMetadata(name="imgclf", version=__version__, extensions=[])

    def _metadata(name: str, version: str | None = None) -> p.ModelMetadata:
        pred = model(name, version)
        md = p.model_metadata(cfg.model_name, pred.labels, f"imgclf_{pred.engine_cfg.backend}",
                              ood=pred.compute.detector is not None)
        incomplete = getattr(pred, "run_incomplete", None)
        if incomplete:  # the model's run did not finish (see imgclf.rundir.state)
            md.parameters["run_incomplete"] = incomplete
        if (iteration := iteration_of(pred)) is not None:
            md.parameters["iteration"] = iteration
        return md

    async def _infer(name: str, req: p.InferRequest, version: str | None = None) -> p.InferResponse:
        model(name, version)
        result = await service.classify(p.infer_images(req))
        return p.infer_response(cfg.model_name, req, result.proba, result.predictor.labels, _answers(result))

    @app.get("/v2/models/{name}", tags=["v2"], response_model=p.ModelMetadata, responses=ERROR_RESPONSES)
    def model_metadata(name: str = name_param) -> p.ModelMetadata:
        """Model metadata: input (BYTES images), outputs (FP32 probabilities, labels), class labels."""
        return _metadata(name)

    @app.get("/v2/models/{name}/versions/{version}", tags=["v2"], response_model=p.ModelMetadata,
             responses=ERROR_RESPONSES)
    def model_version_metadata(name: str = name_param, version: str = version_param) -> p.ModelMetadata:
        """Metadata of one model version (this server has version 1)."""
        return _metadata(name, version)

    @app.get("/v2/models/{name}/ready", tags=["v2"], responses=ERROR_RESPONSES)
    def model_ready(name: str = name_param) -> dict[str, Any]:
        """Model readiness: 200 when the model answers requests."""
        model(name)
        return {"name": name, "ready": True}

    @app.post("/v2/models/{name}/infer", tags=["v2"], response_model=p.InferResponse, responses=ERROR_RESPONSES)
    async def infer(req: p.InferRequest, name: str = name_param) -> p.InferResponse:
        """Classify base64 images (one BYTES input of shape [n]) → FP32 probabilities [n, classes] and labels."""
        return await _infer(name, req)

    @app.post("/v2/models/{name}/versions/{version}/infer", tags=["v2"], response_model=p.InferResponse,
              responses=ERROR_RESPONSES)
    async def infer_version(req: p.InferRequest, name: str = name_param, version: str = version_param) -> p.InferResponse:
        """Inference on one model version (this server has version 1)."""
        return await _infer(name, req, version)


def _add_predict_routes(app: FastAPI, service: InferenceService, cfg: ServeConfig) -> None:
    """``/predict`` (image files) and ``/score`` (the 2017 sample's base64 JSON)."""
    @app.post("/predict", tags=["predict"], response_model=p.PredictResponse, responses=ERROR_RESPONSES,
              openapi_extra=_PREDICT_BODY)
    async def predict(request: Request) -> p.PredictResponse:
        """Classify image files (multipart field `files`, repeatable) or one raw image body."""
        service.require_model()
        images, names = await _read_upload(request, cfg.queue_size, "/predict")
        result = await service.classify(images, names)
        preds = [p.Prediction(filename=name, executionTimeMs=result.ms, **_scored(r))
                 for name, r in zip(names, _answers(result))]
        return p.PredictResponse(model=cfg.model_name, iteration=iteration_of(result.predictor), predictions=preds,
                                 executionTimeMs=result.ms)

    @app.post("/score", tags=["predict"], response_model=p.ScoreResult | list[p.ScoreResult], responses=ERROR_RESPONSES)
    async def score(req: p.ScoreRequest) -> Any:
        """The 2017 sample's contract: one object per image (a list when several are sent)."""
        service.require_model()
        images = [p.decode_base64(row.image, f"input_df[{i}]['image base64 string']") for i, row in enumerate(req.input_df)]
        result = await service.classify(images)
        out = [p.score_result(row, result.predictor.labels, result.ms, r) for row, r in zip(result.proba, _answers(result))]
        return out[0] if len(out) == 1 else out


def _answers(result: Any) -> list[dict[str, Any]]:
    """:meth:`Compute.answer` of every image of a classified request (its OOD score included), by the predictor
    that answered it."""
    ood = result.ood if result.ood is not None else [None] * len(result.proba)
    return [result.predictor.compute.answer(row, None if s is None else float(s)) for row, s in zip(result.proba, ood)]


def iteration_of(predictor: Any) -> str | None:
    """The name of the run whose bundle ``predictor`` holds (RUN/model → RUN's folder name), or None for a bundle
    outside a run directory."""
    folder = Path(getattr(predictor, "bundle_dir", "") or "")
    return folder.parent.name if folder.name == "model" else None


def _scored(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("label", "score", "scores", "ood_score", "unknown", "nearest_label")
    return {k: r[k] for k in keys if k in r}


def _add_explain_route(app: FastAPI, service: InferenceService, cfg: ServeConfig) -> None:
    """``/explain``: where the model finds a class in one image (class activation map)."""
    answers = {200: {"description": "The map over the image (PNG), or with ?format=json the map as numbers.",
                     "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}, "application/json": {}}},
               **ERROR_RESPONSES}

    @app.post("/explain", tags=["predict"], response_class=Response, responses=answers, openapi_extra=_PREDICT_BODY)
    async def explain(request: Request, format: Literal["png", "json"] = "png",
                      cls: str = Query("", alias="class", max_length=200, description="Class to map (default: the predicted one)."),
                      size: int = Query(512, ge=16, le=4096, description="Longest side of the PNG in pixels.")) -> Response:
        """The class activation map of one image (a body as for /predict): the predicted class's, or ``class``'s.

        The map decomposes the classifier's decision value exactly (its mean plus the class's bias); the
        PNG colours it over the part of the image the network sees (blue least, red most evidence).
        """
        pred = service.require_model()
        classes = [cls] if cls else []
        for c in classes:
            pred.explainer.class_index(c)  # an unknown class is refused before any decoding
        images, names = await _read_upload(request, cfg.queue_size, "/explain")

        def run(predictor: Any, data: bytes) -> Any:
            e = predictor.explain(data, classes)
            return e.to_dict() if format == "json" else e.overlay_png(cls or None, size)

        out = await service.explain(images, names, run)
        if format == "json":
            return JSONResponse({"model": cfg.model_name, "filename": names[0], **out})
        return Response(out, media_type="image/png")
