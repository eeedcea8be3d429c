"""The web app: routes, each a read-only view of the store (GET only: nothing here can write)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from advdb.errors import AdvdbError, DataError, NotFoundError, QueryError, StoreError
from advdb.store.location import StoreLocation
from advdb.vocabulary import parse_run_ids
from advdb.web import figures, views
from advdb.web.guard import Access, Guard
from advdb.web.reader import DEFAULT_MEMORY_LIMIT, StoreReader

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
TEMPLATES.env.filters["cell"] = views.cell
SQL_ROW_LIMIT = 1000

SQL_WORKERS = 4  # SQL-box queries at once; more wait their turn without holding up the pages

Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class UiSettings:
    """How ``advdb ui`` serves: where, who may ask (:class:`advdb.web.guard.Access`), and the SQL box's limits."""

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    allowed_hosts: Sequence[str] = ()
    query_timeout: float = 10.0
    memory_limit: str | None = DEFAULT_MEMORY_LIMIT


def status_of(exc: AdvdbError) -> int:
    """The HTTP status of a library error: 404 not found, 409 a changed file, 503 the store unreachable, else 400."""
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, DataError):
        return 409
    return 503 if isinstance(exc, StoreError) else 400


def create_app(location: StoreLocation, settings: UiSettings | None = None) -> Starlette:
    """The app over the store at ``location`` (its schema checked by the caller).

    With ``settings`` (what :func:`serve` passes), requests pass the Host and token checks of
    :mod:`advdb.web.guard`; without, the app is for an in-process client (nothing listens).
    """
    config = settings or UiSettings()
    reader = StoreReader(location, query_timeout=config.query_timeout, memory_limit=config.memory_limit)
    reports = views.ReportCache()
    images = views.ImageCache()
    pool = ThreadPoolExecutor(SQL_WORKERS, thread_name_prefix="advdb-sql")

    def page(fn: Callable[[Request, StoreReader], tuple[str, dict[str, Any]]]) -> Handler:
        def handler(request: Request) -> Response:
            try:
                template, context = fn(request, reader)
            except AdvdbError as exc:
                return _error(request, exc, reader)
            return _render(request, template, context, reader)

        return handler

    async def sql_route(request: Request) -> Response:
        """The SQL box: the query on the SQL pool (a slow one never holds a page thread), the page after."""
        text = request.query_params.get("q", "").strip()
        try:
            context = await asyncio.wrap_future(pool.submit(sql_context, reader, text))
        except AdvdbError as exc:
            context = {"q": text, "columns": [], "rows": [], "more": False, "error": str(exc)}
            return await run_in_threadpool(_render, request, "sql.html", context, reader, status_of(exc))
        return await run_in_threadpool(_render, request, "sql.html", context, reader)

    routes = [
        Route("/", page(runs_page), methods=["GET"]),
        Route("/runs/{run_id:int}", page(run_page), methods=["GET"]),
        Route("/explore", page(explore_page), methods=["GET"]),
        Route("/compare", page(compare_page), methods=["GET"]),
        Route("/reports", page(reports_page), methods=["GET"]),
        Route("/reports/{name}.png", lambda r: report_figure(r, reader, reports), methods=["GET"]),
        Route("/reports/{name}/notes", lambda r: report_notes(r, reader, reports), methods=["GET"]),
        Route("/reports/{name}", page(functools.partial(report_page, reports=reports)), methods=["GET"]),
        Route("/sql", sql_route, methods=["GET"]),
        Route("/image/{run_id:int}/{image_id:int}/{which}.png", lambda r: image(r, reader, images), methods=["GET"]),
        Route("/api/version", lambda r: JSONResponse({"version": reader.version()}), methods=["GET"]),
        Route("/static/plotly.js", plotly_js, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        reader.interrupt()
        pool.shutdown(wait=False, cancel_futures=True)
        reader.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    if settings is not None:
        app.add_middleware(
            Guard, access=Access.for_host(settings.host, token=settings.token, allowed_hosts=settings.allowed_hosts)
        )
    app.state.reader = reader
    app.state.images = images
    return app


def _error(request: Request, exc: AdvdbError, reader: StoreReader) -> Response:
    status = status_of(exc)
    context = {"message": str(exc), "status": status}
    try:
        return _render(request, "error.html", context, reader, status=status)
    except StoreError:  # the store went away meanwhile: the page without its version
        return TEMPLATES.TemplateResponse(
            request, "error.html", {**context, "store": reader.location.masked, "version": ""}, status_code=status
        )


def _render(
    request: Request, template: str, context: dict[str, Any], reader: StoreReader, status: int = 200
) -> Response:
    context = {**context, "store": reader.location.masked, "version": reader.version()}
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status)


def runs_page(request: Request, reader: StoreReader) -> tuple[str, dict[str, Any]]:
    filters = {k: request.query_params.get(k) or None for k in views.RUN_FILTERS}
    rows = reader.query("ui_runs", **filters).to_pylist()
    sort, desc = views.sort_key(request.query_params.get("sort")), request.query_params.get("desc") == "1"
    rows = views.sorted_rows(rows, sort, desc)
    choices = views.filter_choices(reader.query("ui_runs", **dict.fromkeys(views.RUN_FILTERS)).to_pylist())
    return "runs.html", {
        "rows": rows,
        "columns": views.RUN_COLUMNS,
        "filters": filters,
        "choices": choices,
        "sort": sort,
        "desc": desc,
        "query": dict(request.query_params),
    }


def run_page(request: Request, reader: StoreReader) -> tuple[str, dict[str, Any]]:
    run_id = int(request.path_params["run_id"])
    run = views.one(reader.query("ui_run", run=run_id), f"no run {run_id} in the store")
    config, versions = views.as_json(run.pop("config")), views.as_json(run.pop("versions"))
    samples = reader.query("ui_run_samples", run=run_id).to_pydict()
    plots = {}
    if samples["image_id"]:
        first = [v for v in samples["first_success_iter"] if v is not None]
        l2 = [v for v in samples["success_l2"] if v is not None]
        plots["first"] = figures.histograms(
            [(f"run {run_id}", first)], title="first iteration at the target", xlabel="iteration"
        )
        plots["l2"] = figures.histograms([(f"run {run_id}", l2)], title="L2 of x − x₀ at success", xlabel="L2")
        plots.update(_curves(reader, [run_id]))
    return "run.html", {
        "run": run,
        "config": json.dumps(config, indent=2, default=str),
        "versions": json.dumps(versions, indent=2, default=str),
        "plots": plots,
        "timing": views.timing(run),
        "success": views.success(run),
        "first_image": samples["image_id"][0] if samples["image_id"] else None,
    }


def _curves(reader: StoreReader, runs: list[int], labels: dict[int, str] | None = None) -> dict[str, str]:
    """``curve_iterations`` and ``curve_epsilon``: the runs' curves (report curves), if they have images."""
    plots = views.curve_plots(reader, runs, labels or {r: f"run {r}" for r in runs})
    return {f"curve_{k}": v for k, v in plots.items()}


def explore_page(request: Request, reader: StoreReader) -> tuple[str, dict[str, Any]]:
    h = views.threshold(request.query_params.get("h"))
    runs = parse_run_ids(request.query_params.get("runs"), "runs") or views.latest_attack(reader)
    if not runs:
        raise NotFoundError("the store has no attack runs yet: start one with `advdb attack --loss ce-sign --n 500`")
    labels = views.run_labels(reader, runs)
    means = views.by_run(reader.query("ui_trajectory_means", runs=runs).to_pylist(), runs)
    shares = views.by_run(reader.query("ui_subspace_shares", runs=runs, h=h).to_pylist(), runs)
    context: dict[str, Any] = {
        "runs": runs,
        "labels": labels,
        "h": h,
        "plots": {
            "means": figures.mean_curves([(labels[r], means[r]) for r in runs], h=h),
            "shares": figures.subspace_shares([(labels[r], shares[r]) for r in runs]),
            **_curves(reader, runs, labels),
        },
    }
    image_id = request.query_params.get("image")
    image_run = runs[0]
    samples = reader.query("ui_run_samples", run=image_run).to_pylist()
    context["images"] = samples[:200]
    chosen = int(image_id) if image_id and image_id.isdigit() else (samples[0]["image_id"] if samples else None)
    if chosen is not None:
        rows = reader.query("ui_image_trajectory", run=image_run, image=chosen).to_pydict()
        if not rows["iteration"]:
            raise NotFoundError(f"image {chosen} was not attacked in run {image_run}")
        info = views.one(reader.query("ui_image", run=image_run, image=chosen), f"no image {chosen} in run {image_run}")
        context.update(image=info, image_run=image_run)
        context["plots"]["image"] = figures.image_trajectory(rows, h=h)
    return "explore.html", context


def compare_page(request: Request, reader: StoreReader) -> tuple[str, dict[str, Any]]:
    runs = parse_run_ids(request.query_params.get("runs"), "runs") or []
    if not 2 <= len(runs) <= 8:
        raise QueryError("compare takes 2 to 8 runs: /compare?runs=3,4,5")
    info = [views.one(reader.query("ui_run", run=r), f"no run {r} in the store") for r in runs]
    labels = views.run_labels(reader, runs)
    means = views.by_run(reader.query("ui_trajectory_means", runs=runs).to_pylist(), runs)
    firsts = [
        (
            labels[r],
            [
                s["first_success_iter"]
                for s in reader.query("ui_run_samples", run=r).to_pylist()
                if s["first_success_iter"] is not None
            ],
        )
        for r in runs
    ]
    plots = {
        "means": figures.mean_curves([(labels[r], means[r]) for r in runs], h=0.9),
        "first": figures.histograms(firsts, title="first iteration at the target", xlabel="iteration"),
    }
    return "compare.html", {"runs": runs, "rows": views.compare_rows(info), "plots": plots}


def reports_page(request: Request, reader: StoreReader) -> tuple[str, dict[str, Any]]:
    from advdb.analytics.reports import REPORTS

    return "reports.html", {"reports": [(r.name, r.title) for r in REPORTS.values()]}


def report_page(request: Request, reader: StoreReader, *, reports: views.ReportCache) -> tuple[str, dict[str, Any]]:
    """A table report at once; a figure report's page links its PNG, drawn when the browser asks."""
    from advdb.analytics.reports import get_report

    name = request.path_params["name"]
    report = get_report(name)
    context: dict[str, Any] = {"name": name, "title": report.title, "kind": report.kind}
    if report.kind != "figure":
        built = reports.get(reader, name)
        context.update(columns=built.columns, rows=built.rows, notes=built.notes)
    return "report.html", context


def report_figure(request: Request, reader: StoreReader, reports: views.ReportCache) -> Response:
    try:
        built = reports.get(reader, request.path_params["name"])
    except AdvdbError as exc:
        return Response(str(exc), status_code=404, media_type="text/plain")
    if built.png is None:
        return Response(f"{request.path_params['name']} has no figure", status_code=404, media_type="text/plain")
    return Response(built.png, media_type="image/png")


def report_notes(request: Request, reader: StoreReader, reports: views.ReportCache) -> Response:
    try:
        return JSONResponse({"notes": reports.get(reader, request.path_params["name"]).notes})
    except AdvdbError as exc:
        return JSONResponse({"notes": [str(exc)]}, status_code=404)


def sql_context(reader: StoreReader, text: str) -> dict[str, Any]:
    """The SQL box's page: the first :data:`SQL_ROW_LIMIT` rows (DuckDB stops there), and whether there were more."""
    context: dict[str, Any] = {"q": text, "columns": [], "rows": [], "more": False}
    if text:
        result = reader.sql_box(text, limit=SQL_ROW_LIMIT)
        context.update(columns=result.table.column_names, rows=result.table.to_pylist(), more=result.more)
    return context


def image(request: Request, reader: StoreReader, images: views.ImageCache) -> Response:
    """An attacked image as PNG: ``genuine``, ``adversarial`` or their ``difference`` (rescaled);
    an adversarial file whose sha256 is not the stored one is refused (409)."""
    try:
        png = images.png(
            reader,
            int(request.path_params["run_id"]),
            int(request.path_params["image_id"]),
            request.path_params["which"],
        )
    except AdvdbError as exc:
        return Response(str(exc), status_code=status_of(exc), media_type="text/plain")
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})


@functools.lru_cache(maxsize=1)
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def plotly_js(request: Request) -> Response:
    return Response(_plotly_js(), media_type="application/javascript", headers={"Cache-Control": "max-age=86400"})


def serve(location: StoreLocation, settings: UiSettings) -> None:
    """Serve the app until Ctrl-C or SIGTERM, which stop it at once: running queries are interrupted."""
    import uvicorn

    app = create_app(location, settings)
    reader: StoreReader = app.state.reader

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            reader.interrupt()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="warning", timeout_graceful_shutdown=3
    )
    Server(config).run()
