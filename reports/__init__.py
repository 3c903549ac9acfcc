"""Results for people: pages under /manage for signed-in managers (sign-in, the campaigns with their
key figures, one campaign's results as server-rendered SVG charts with a data table under each).

Layer: above `campaigns` (whose results it draws), below `api` (which serves the same charts as
GET /api/v1/campaigns/{id}/charts/{name}.svg).
"""

from flask import Flask


def init_app(app: Flask) -> None:
    from reports import pages

    app.register_blueprint(pages.bp)
