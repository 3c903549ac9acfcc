"""Helpers for the results-page tests: what each chart must show, derived from the stats API's JSON
alone (never from reports.charts, which would prove nothing), and readers of tables and SVGs."""

from __future__ import annotations

import re
from html.parser import HTMLParser

PASSWORD = "correct horse battery staple"
COMMON = ["funnel", "activity", "deliveries", "skipped", "referrals"]
PER_KIND = {"announcement": [], "share": ["networks"], "review": ["destinations"], "poll": ["options"],
            "petition": ["signatures"]}


def kind_of(campaign: dict) -> str:
    if campaign["kind"] == "vote":
        return campaign["settings"]["type"]
    return campaign["kind"]


def expected_tables(stats: dict, kind: str) -> dict[str, list[list[str]]]:
    """chart name → the rows its table must have (as text), read from GET …/stats."""
    res = stats["results"]
    funnel = res["funnel"]
    tables = {
        "funnel": [[k, funnel[k]] for k in ("audience", "sent", "clicked", "acted", "newcomers")],
        "activity": [[a["start"], a["sent"], a["clicked"], a["acted"]] for a in res["activity"]],
        "deliveries": [[k, v] for k, v in stats["deliveries"].items() if v],
        "skipped": [[k, v] for k, v in sorted(stats["skipped"].items())],
        "referrals": [[f"generation {i}", n] for i, n in enumerate(res["referral_generations"], start=1)],
    }
    figures = res.get(stats_kind(kind), {})
    if kind == "share":
        tables["networks"] = [[k, v] for k, v in figures["per_network"].items()]
    elif kind == "review":
        tables["destinations"] = [[k, v] for k, v in figures["per_destination"].items()]
    elif kind == "poll":
        tables["options"] = [[o["label"], o["votes"]] for o in figures["options"]]
    elif kind == "petition":
        tables["signatures"] = [["signatures", figures["signatures"]]] + (
            [["goal", figures["goal"]]] if figures.get("goal") else [])
    return {name: [[str(cell) for cell in row] for row in rows] for name, rows in tables.items()}


def stats_kind(kind: str) -> str:
    return "vote" if kind in ("poll", "petition") else kind


class _Tables(HTMLParser):
    """The body rows of the table in each <section data-chart=…> of a results page, as text."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: dict[str, str] = {}
        self._chart: str | None = None
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and "data-chart" in attrs:
            self._chart = attrs["data-chart"]
            self.tables[self._chart] = []
        elif tag == "img" and self._chart:
            self.images[self._chart] = attrs["src"]
        elif tag == "tbody" and self._chart:
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.tables[self._chart].append([])
        elif tag in ("td", "th") and self._in_body:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._chart][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "section":
            self._chart = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def read_page(html: str) -> tuple[dict[str, list[list[str]]], dict[str, str]]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables, parser.images


def svg_values(svg: str) -> list[str]:
    """The values pygal drew (one <desc class="value"> per bar or point), in series order."""
    return re.findall(r'<desc class="value">([^<]*)</desc>', svg)


def csrf_from(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, email: str, password: str = PASSWORD, next_: str | None = None):
    page = client.get("/manage/sign-in")
    data = {"csrf_token": csrf_from(page.get_data(as_text=True)), "email": email, "password": password}
    if next_ is not None:
        data["next"] = next_
    return client.post("/manage/sign-in", data=data)
