"""``advdb ui``: a local, read-only web view of a store — runs, trajectories, comparisons,
the paper's reports and a SQL box — served by uvicorn, drawn with Plotly (its JavaScript is
served from the plotly package: no CDN, works offline).

Every page reads through the same DuckDB query layer as ``advdb sql``
(:class:`advdb.analytics.query.QuerySession`): the store is attached read-only, and only
GET requests exist, so no page or request can change the store.
"""

from advdb.web.app import UiSettings, create_app, serve

__all__ = ["UiSettings", "create_app", "serve"]
