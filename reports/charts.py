"""A campaign's results as charts: each one a table of numbers (taken as they are from the stats
of GET /api/v1/campaigns/{id}/stats) and its SVG drawing by pygal, rendered on the server.

The table is the truth of a chart: the results page prints it under the drawing (for screen
readers, for print, for copying), and the drawing shows the same numbers. The SVG carries no
script and loads nothing: it works as an <img>, in a mail, a wiki or a slide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

import pygal
from pygal.style import Style

from campaigns import results, services
from core.errors import NotFound

# Colours with at least 4.5:1 contrast on white (WCAG AA for the printed values and labels).
STYLE = Style(background="#ffffff", plot_background="#ffffff", foreground="#222222", foreground_strong="#111111",
              foreground_subtle="#555555", font_family="system-ui, sans-serif",
              colors=("#1f5f99", "#2e7d32", "#b3261e", "#6a3d9a", "#8a5a00", "#00695c"),
              title_font_size=18, label_font_size=13, major_label_font_size=13, value_font_size=13,
              legend_font_size=13, tooltip_font_size=13)
SVG_NS = "http://www.w3.org/2000/svg"


@dataclass
class Chart:
    name: str
    title: str
    kind: str  # bar (one series, labels down the side) or lines (series over time)
    columns: list[str]  # the table's header: the label column, then one per series
    rows: list[list[Any]]  # [label, value, …]
    note: str = ""  # a sentence under the title (k-factor, goal)
    empty: str = "Nothing to show yet."
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def values(self) -> list[list[int | float]]:
        return [row[1:] for row in self.rows]

    def summary(self) -> str:
        """One sentence with every number, for the <img alt> text."""
        if not self.rows:
            return f"{self.title}: {self.empty}"
        parts = ["; ".join(f"{row[0]}: " + ", ".join(f"{c} {v}" for c, v in zip(self.columns[1:], row[1:], strict=True))
                           for row in self.rows)]
        return f"{self.title}. " + " ".join([self.note, *parts]).strip()


def _bar(name: str, title: str, label: str, value: str, pairs: list[tuple[str, int]], **kw) -> Chart:
    return Chart(name, title, "bar", [label, value], [[k, v] for k, v in pairs], **kw)


def stats_for(campaign_id: int, bucket: str = "day") -> dict[str, Any]:
    """What GET /api/v1/campaigns/{id}/stats answers: delivery counts and the results."""
    return {**services.stats(campaign_id), "results": results.results(campaign_id, bucket)}


def charts_for(stats: dict[str, Any], kind: str) -> list[Chart]:
    """Every chart of a campaign of `kind` ("share", "review", "vote", "survey", "announcement"), from its stats."""
    res = stats["results"]
    funnel = res["funnel"]
    found = [
        _bar("funnel", "Funnel", "Step", "People", [(k, funnel[k]) for k in ("audience", "sent", "clicked", "acted",
                                                                            "newcomers")]),
        Chart("activity", f"Sent, clicked and acted per {res['bucket']}", "lines",
              ["Start (UTC)", "sent", "clicked", "acted"],
              [[a["start"], a["sent"], a["clicked"], a["acted"]] for a in res["activity"]],
              note="First click per mail, first action per person.", empty="Nothing was sent yet."),
        _bar("deliveries", "Deliveries by status", "Status", "Deliveries",
             [(k, v) for k, v in stats["deliveries"].items() if v]),
        _bar("skipped", "Skipped at send time, by reason", "Reason", "Deliveries", sorted(stats["skipped"].items()),
             empty="Nobody was skipped."),
        _bar("referrals", "Referral tree: newcomers per generation", "Generation", "Newcomers",
             [(f"generation {i}", n) for i, n in enumerate(res["referral_generations"], start=1)],
             note=f"k-factor {_number(res['k_factor'])} (newcomers per person who acted); "
                  f"referral depth {res['referral_depth']}.",
             empty="No newcomers joined through this campaign yet.",
             extra={"k_factor": res["k_factor"], "referral_depth": res["referral_depth"]}),
    ]
    figures = res.get(kind) or {}
    if kind == "share":
        found.append(_bar("networks", "Shares per network", "Network", "Shares", list(figures["per_network"].items()),
                          note=f"{figures['visits']} visits of the shared link."))
    elif kind == "review":
        found.append(_bar("destinations", "Review confirmations per site", "Site", "Confirmations",
                          list(figures["per_destination"].items())))
    elif kind == "vote" and figures.get("type") == "poll":
        found.append(_bar("options", "Votes per option", "Option", "Votes",
                          [(o["label"], o["votes"]) for o in figures["options"]],
                          note=f"{figures['voters']} people voted."))
    elif kind == "vote" and figures.get("type") == "petition":
        goal = figures.get("goal")
        found.append(_bar("signatures", "Signatures", "", "Count",
                          [("signatures", figures["signatures"])] + ([("goal", goal)] if goal else []),
                          note=("Goal reached." if figures.get("goal_reached_at") else "")))
    elif kind == "survey":
        found += _survey_charts(figures)
    return found


def _survey_charts(figures: dict[str, Any]) -> list[Chart]:
    """NPS groups, then one chart per scale or choice question (text answers are read, not drawn)."""
    found = []
    score = figures.get("nps")
    if score:
        ci = score.get("ci95")
        found.append(_bar("nps", "Net Promoter Score: promoters (9–10), passives (7–8), detractors (0–6)", "Group",
                          "People", [(g, score[g]) for g in ("promoters", "passives", "detractors")],
                          note=(f"NPS {_number(score['score'])} (95 % interval {_number(ci[0])} to {_number(ci[1])}), "
                                f"{score['answers']} answers." if score["score"] is not None else "No answers yet."),
                          extra={"nps": score["score"]}))
    for q in figures.get("questions", []):
        if "distribution" in q:
            found.append(_bar(f"question-{q['key']}", q["label"], "Answer", "People", list(q["distribution"].items())))
        elif "options" in q:
            found.append(_bar(f"question-{q['key']}", q["label"], "Option", "Choices",
                              [(o["label"], o["count"]) for o in q["options"]]))
    return found


def chart(stats: dict[str, Any], kind: str, name: str) -> Chart:
    for candidate in charts_for(stats, kind):
        if candidate.name == name:
            return candidate
    names = ", ".join(c.name for c in charts_for(stats, kind))
    raise NotFound(f"a {kind} campaign has no chart '{name}'; it has: {names}")


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def svg(item: Chart) -> str:
    """The chart drawn by pygal, as a standalone SVG document without scripts."""
    options = dict(style=STYLE, js=[], width=800, height=420 if item.kind == "lines" else max(220, 90 + 44 * len(item.rows)),
                   title=item.title, print_values=item.kind == "bar", show_legend=item.kind == "lines",
                   legend_at_bottom=True, truncate_label=-1, truncate_legend=-1, no_data_text=item.empty,
                   show_y_guides=item.kind == "lines", margin=16)
    if item.kind == "lines":
        drawing = pygal.Line(**options, x_label_rotation=30, show_minor_x_labels=len(item.rows) <= 14,
                             x_labels_major_count=14)
        drawing.x_labels = [row[0][:16].replace("T", " ") for row in item.rows]
        for i, column in enumerate(item.columns[1:], start=1):
            drawing.add(column, [row[i] for row in item.rows])
    else:
        drawing = pygal.HorizontalBar(**options)
        rows = item.rows[::-1]  # pygal draws the first bar at the bottom; read top-down like the table
        drawing.x_labels = [str(row[0]) for row in rows]
        drawing.add(item.columns[-1], [row[1] for row in rows])
    tree = drawing.render_tree()
    for parent in tree.iter():  # pygal always adds a config <script>; a chart needs none
        for child in [c for c in parent if c.tag in ("script", f"{{{SVG_NS}}}script")]:
            parent.remove(child)
    tree.set("role", "img")
    tree.set("aria-label", item.summary())
    return ElementTree.tostring(tree, encoding="unicode") if isinstance(tree, ElementTree.Element) \
        else _lxml_string(tree)


def _lxml_string(tree) -> str:
    from lxml import etree

    return etree.tostring(tree, encoding="unicode")
