"""A campaign's results as SVG charts: GET /api/v1/campaigns/{id}/charts/{name}.svg, for embedding
in other tools (the results pages under /manage show the same images, with their tables)."""

from __future__ import annotations

from flask import Response

from api import bp
from api.auth import require
from api.campaigns import CID, StatsQuery
from api.conventions import load_query
from api.openapi import doc
from campaigns import services
from reports import charts

SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


@bp.get(f"/campaigns/{CID}/charts/<name>.svg")
@doc("One chart of the campaign's results, as an SVG image", tag="Campaign results", query=StatsQuery,
     media={"image/svg+xml": {"type": "string"}}, errors=(404,))
@require("viewer")
def campaign_chart(campaign_id: int, name: str):
    """Drawn on the server (pygal), with no script: embed it as `<img src=…>` anywhere.

    Every campaign has `funnel`, `activity` (sent, clicked and acted per `bucket`), `deliveries`,
    `skipped` (reasons at send time) and `referrals` (newcomers per generation; the k-factor in its
    title); a share campaign also `networks`, a review campaign `destinations`, a poll `options`
    and a petition `signatures`. The numbers are those of `GET /api/v1/campaigns/{id}/stats`, and
    the `aria-label` of the image states them all. Another name, or a chart of another kind, is 404.
    """
    args = load_query(StatsQuery())
    kind = services.get_campaign(campaign_id).kind.value
    item = charts.chart(charts.stats_for(campaign_id, args.get("bucket", "day")), kind, name)
    response = Response(charts.svg(item), mimetype="image/svg+xml")
    # Opened on its own, the SVG is a document: its own <style> only, never a script.
    response.headers["Content-Security-Policy"] = SVG_POLICY
    response.headers["Cache-Control"] = "private, max-age=60"
    response.headers["Vary"] = "Authorization, Cookie"
    return response
