"""The settings of a `survey` campaign: questions, conditions, thank-you page, and the anti-gating rule.

    {"questions": [{"key": "nps", "type": "nps", "required": true,
                    "label": {"en": "How likely are you to recommend us to a friend?", "de": "…"}},
                   {"key": "why", "type": "long_text", "label": {…}, "max_length": 1000,
                    "show_if": {"question": "nps", "op": "lte", "value": 6}}, …],      (1–20)
     "closes_at": "2026-12-31T18:00:00+01:00",                                        (optional)
     "thank_you": {"en": "…", "de": "…"},                                              (optional)
     "review_invite": {"url": "https://…", "site": "google", "text": {"en": "…"}},     (optional)
     "follow_up": true}                                     (offer a personal reply to the unhappy)

A review invitation, if any, is shown to every respondent alike: settings that make it depend on an
answer (review gating) are refused with REVIEW_GATING. See docs/surveys.md.
"""

from __future__ import annotations

import re
from typing import Any

from campaigns.setting_values import is_http_url, parse_time
from supporters.models import LANGUAGES

QUESTION_TYPES = ("nps", "rating", "single", "multiple", "short_text", "long_text")
SCALES = {"nps": (0, 10), "rating": (1, 5)}
CHOICE_TYPES = ("single", "multiple")
TEXT_LIMITS = {"short_text": 200, "long_text": 2000}
MAX_QUESTIONS, MAX_OPTIONS, MIN_OPTIONS = 20, 20, 2
MAX_LABEL, MAX_OPTION, MAX_THANKS = 300, 200, 1000
CONDITION_OPS = ("eq", "ne", "lt", "lte", "gt", "gte")
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
QUESTION_KEYS = {"key", "type", "label", "required", "options", "max_length", "show_if"}
INVITE_KEYS = {"url", "text", "site"}
# Keys by which a review invitation (or the thank-you page) would be routed by the answers.
GATING_KEYS = {"show_if", "if", "when", "condition", "conditions", "only_if", "audience", "segment", "filter",
               "min_score", "max_score", "min_nps", "nps", "score", "rating", "promoters", "passives",
               "detractors", "satisfied", "unsatisfied", "happy", "unhappy", "positive", "negative"}
REVIEW_GATING = ("review gating is not allowed: a review invitation must be shown to every respondent alike, "
                 "never chosen by their answers or score (FTC rule on consumer reviews, 16 CFR 465.7, review "
                 "suppression; Google's review policy forbids selective solicitation; see docs/surveys.md)")


def is_text_question(q: dict) -> bool:
    return q.get("type") in TEXT_LIMITS


def text_limit(q: dict) -> int:
    return int(q.get("max_length") or TEXT_LIMITS[q["type"]])


def _label(value: Any, languages: tuple[str, ...], path: str, add, limit: int = MAX_LABEL) -> None:
    if not isinstance(value, dict) or not value:
        add(path, f"a text per language, e.g. {{\"en\": \"…\"}} (at most {limit} characters each)")
        return
    for lang, text in value.items():
        if lang not in LANGUAGES:
            add(f"{path}.{lang}", f"unknown language; use one of {', '.join(LANGUAGES)}")
        elif not isinstance(text, str) or not 0 < len(text.strip()) <= limit or _has_control(text):
            add(f"{path}.{lang}", f"1 to {limit} characters, no control characters")
    for lang in languages:
        if lang not in value:
            add(path, f"missing the {lang} text (the campaign has content in {lang})")


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 and c not in "\n\t" or ord(c) == 127 for c in text)


def _options(q: dict, languages: tuple[str, ...], path: str, add) -> int:
    options = q.get("options")
    if not isinstance(options, dict) or not options:
        add(f"{path}.options", f"a list of {MIN_OPTIONS} to {MAX_OPTIONS} options per language, e.g. {{\"en\": [\"…\", \"…\"]}}")
        return 0
    counts = set()
    for lang, items in options.items():
        if lang not in LANGUAGES:
            add(f"{path}.options.{lang}", f"unknown language; use one of {', '.join(LANGUAGES)}")
            continue
        if not isinstance(items, list) or not MIN_OPTIONS <= len(items) <= MAX_OPTIONS:
            add(f"{path}.options.{lang}", f"a list of {MIN_OPTIONS} to {MAX_OPTIONS} options")
            continue
        for i, o in enumerate(items):
            if not isinstance(o, str) or not 0 < len(o.strip()) <= MAX_OPTION or _has_control(o):
                add(f"{path}.options.{lang}[{i}]", f"1 to {MAX_OPTION} characters, no control characters")
        if len({o.strip().lower() for o in items if isinstance(o, str)}) != len(items):
            add(f"{path}.options.{lang}", "options must differ")
        counts.add(len(items))
    if len(counts) > 1:
        add(f"{path}.options", "every language needs the same number of options, in the same order")
    for lang in languages:
        if lang not in options:
            add(f"{path}.options", f"missing the {lang} options (the campaign has content in {lang})")
    return min(counts) if counts else 0


def _condition(cond: Any, earlier: dict[str, dict], path: str, add) -> None:
    if not isinstance(cond, dict) or set(cond) - {"question", "op", "value"}:
        add(path, "an object {\"question\": KEY, \"op\": OP, \"value\": V}")
        return
    target = earlier.get(cond.get("question")) if isinstance(cond.get("question"), str) else None
    if target is None:
        add(f"{path}.question", "the key of an earlier question (a condition can only look back)")
        return
    if cond.get("op") not in CONDITION_OPS:
        add(f"{path}.op", f"one of {', '.join(CONDITION_OPS)}")
        return
    value, kind = cond.get("value"), target.get("type")
    if kind in TEXT_LIMITS:
        add(f"{path}.question", "a condition can only depend on a scale or choice question")
    elif not isinstance(value, int) or isinstance(value, bool):
        add(f"{path}.value", "a whole number (a score, or an option's position counted from 0)")
    elif kind in SCALES and not SCALES[kind][0] <= value <= SCALES[kind][1]:
        add(f"{path}.value", f"from {SCALES[kind][0]} to {SCALES[kind][1]}")
    elif kind in CHOICE_TYPES and (cond["op"] not in ("eq", "ne") or not 0 <= value < target.get("_n", 0)):
        add(f"{path}", "for a choice question: op eq or ne and the position of one of its options")


def check(cfg: dict, add, languages: tuple[str, ...] = ()) -> None:
    """Report every problem of a survey definition through `add(field, message)`."""
    questions = cfg.get("questions")
    if not isinstance(questions, list) or not 1 <= len(questions) <= MAX_QUESTIONS:
        add("questions", f"a list of 1 to {MAX_QUESTIONS} questions")
        questions = []
    earlier: dict[str, dict] = {}
    for i, q in enumerate(questions):
        path = f"questions[{i}]"
        if not isinstance(q, dict):
            add(path, "must be an object")
            continue
        if q.keys() & {"review_invite", "review"}:
            add(path, REVIEW_GATING)
        for key in sorted(set(q) - QUESTION_KEYS - {"review_invite", "review"}):
            add(f"{path}.{key}", "unknown key")
        key = q.get("key")
        if not isinstance(key, str) or not KEY_RE.match(key):
            add(f"{path}.key", "1 to 40 characters a-z, 0-9 and _, starting with a letter")
        elif key in earlier:
            add(f"{path}.key", f"duplicate question key {key!r}")
        kind = q.get("type")
        if kind not in QUESTION_TYPES:
            add(f"{path}.type", f"one of {', '.join(QUESTION_TYPES)}")
            continue
        _label(q.get("label"), languages, f"{path}.label", add)
        if not isinstance(q.get("required", False), bool):
            add(f"{path}.required", "true or false")
        entry = dict(q)
        if kind in CHOICE_TYPES:
            entry["_n"] = _options(q, languages, path, add)
        elif "options" in q:
            add(f"{path}.options", f"only single and multiple choice questions have options, not {kind}")
        if "max_length" in q:
            limit = q["max_length"]
            if kind not in TEXT_LIMITS:
                add(f"{path}.max_length", "only text questions have a maximum length")
            elif not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= TEXT_LIMITS[kind]:
                add(f"{path}.max_length", f"a whole number from 1 to {TEXT_LIMITS[kind]}")
        if "show_if" in q:
            _condition(q["show_if"], earlier, f"{path}.show_if", add)
        if isinstance(key, str) and key not in earlier:
            earlier[key] = entry
    closes = cfg.get("closes_at")
    if closes is not None:
        if parse_time(closes) is None:
            add("closes_at", "an ISO 8601 time with a time zone, e.g. 2026-12-01T18:00:00+01:00")
    _thank_you(cfg, languages, add)
    if not isinstance(cfg.get("follow_up", True), bool):
        add("follow_up", "true or false")
    for key in sorted(set(cfg) - {"questions", "closes_at", "thank_you", "review_invite", "follow_up"}):
        add(key, REVIEW_GATING if key in GATING_KEYS or "review" in key else "unknown setting")


def _thank_you(cfg: dict, languages: tuple[str, ...], add) -> None:
    thanks = cfg.get("thank_you")
    if thanks is not None:
        if isinstance(thanks, dict) and set(thanks) & GATING_KEYS:
            add("thank_you", REVIEW_GATING + "; the thank-you page is the same for every respondent")
        else:
            _label(thanks, (), "thank_you", add, MAX_THANKS)
    invite = cfg.get("review_invite")
    if invite is None:
        return
    if not isinstance(invite, dict):
        add("review_invite", "an object {\"url\": \"https://…\", \"text\": {\"en\": \"…\"}}")
        return
    for key in sorted(set(invite) - INVITE_KEYS):
        add(f"review_invite.{key}", REVIEW_GATING if key in GATING_KEYS else "unknown key")
    if not is_http_url(invite.get("url")):
        add("review_invite.url", "an http(s) URL of at most 2000 characters is required")
    if "text" in invite:
        _label(invite["text"], languages, "review_invite.text", add, MAX_THANKS)
    if "site" in invite and (not isinstance(invite["site"], str) or not 0 < len(invite["site"]) <= 40):
        add("review_invite.site", "a site key such as google or trustpilot (see docs/review-rules.md)")


def mentions_survey_answers(node: Any, depth: int = 0) -> bool:
    """Whether a filter uses survey answers anywhere (all/any/not at any depth)."""
    if depth > 50 or not isinstance(node, dict):
        return False
    if node.get("field") == "survey_answer":
        return True
    children = [node.get(k) for k in ("all", "any") if isinstance(node.get(k), list)]
    items = [n for group in children for n in group] + ([node["not"]] if "not" in node else [])
    return any(mentions_survey_answers(n, depth + 1) for n in items)


def visible(questions: list[dict], answers: dict[str, Any]) -> list[dict]:
    """The questions shown for these answers: a condition is met only by an answer that meets it."""
    shown = []
    for q in questions:
        cond = q.get("show_if")
        if cond is None or _meets(answers.get(cond["question"]), cond["op"], cond["value"]):
            shown.append(q)
    return shown


def _meets(answer: Any, op: str, value: int) -> bool:
    if answer is None:
        return False
    values = answer if isinstance(answer, list) else [answer]
    if not values or not all(isinstance(v, int) for v in values):
        return False
    if op == "eq":
        return value in values
    if op == "ne":
        return value not in values
    a = values[0]
    return {"lt": a < value, "lte": a <= value, "gt": a > value, "gte": a >= value}[op]
