"""What review sites allow when a company asks for reviews: a small, documented rule table.

The platform refuses a review campaign that breaks a site's rules and warns where a rule depends
on how the campaign is run. Sources are the sites' public guidelines as summarised in
docs/review-rules.md; keep both in step. No reward of any kind is ever attached to a review, on
any site: that is the platform's own rule, stricter than some sites'.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

INSIDER_KINDS = frozenset({"former_employee", "supplier", "partner"})
ALL_KINDS = frozenset({"fan", "former_employee", "supplier", "partner", "other"})


@dataclass(frozen=True)
class ReviewSite:
    key: str
    name: str
    solicitation_allowed: bool  # may a business ask people for reviews at all?
    # Which supporter kinds the site accepts reviews from (None: anyone with a genuine experience).
    reviewer_kinds: frozenset[str] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


SITES: dict[str, ReviewSite] = {s.key: s for s in [
    ReviewSite("google", "Google Business Profile", True, notes=(
        "no incentives; no reviews by current staff; do not ask only happy customers (no review gating)",)),
    ReviewSite("trustpilot", "Trustpilot", True, notes=(
        "invite all customers, not a selection; no incentives",)),
    ReviewSite("kununu", "kununu", True, reviewer_kinds=frozenset({"former_employee"}), notes=(
        "employer reviews by (former) employees, applicants and trainees only",)),
    ReviewSite("glassdoor", "Glassdoor", True, reviewer_kinds=frozenset({"former_employee"}), notes=(
        "employer reviews by (former) employees only; no incentives or pressure",)),
    ReviewSite("g2", "G2", True, notes=("users of the product only; disclose any relationship",)),
    ReviewSite("capterra", "Capterra", True, notes=("users of the product only; disclose any relationship",)),
    ReviewSite("tripadvisor", "Tripadvisor", True, notes=("no incentives; do not ask selectively",)),
    ReviewSite("app_store", "Apple App Store", True, notes=("no incentives; users of the app only",)),
    ReviewSite("google_play", "Google Play", True, notes=("no incentives; users of the app only",)),
    ReviewSite("yelp", "Yelp", False, notes=("Yelp forbids businesses to ask for reviews at all",)),
    ReviewSite("amazon", "Amazon", False, notes=(
        "Amazon allows review requests only through its own 'Request a Review' function",)),
]}


def accepts(site_key: str, supporter_kind: str) -> bool:
    """May a supporter of this kind review on this site? (Sites outside the table: yes.)"""
    site = SITES.get(site_key)
    return site is None or site.reviewer_kinds is None or supporter_kind in site.reviewer_kinds


@dataclass
class RuleCheck:
    errors: list[str] = field(default_factory=list)  # the campaign is refused
    warnings: list[str] = field(default_factory=list)  # shown to the manager; the campaign may go on

    @property
    def ok(self) -> bool:
        return not self.errors


def check_review_campaign(destinations: Iterable[str], audience_kinds: Iterable[str] | None,
                          incentive: bool = False) -> RuleCheck:
    """Check a review campaign's destinations against the rule table and the audience's kinds.

    `audience_kinds` are the supporter kinds the audience can contain (None: not restricted).
    """
    result = RuleCheck()
    kinds = frozenset(audience_kinds) if audience_kinds is not None else ALL_KINDS
    if incentive:
        result.errors.append("rewards for reviews are never allowed: remove the incentive")
    for key in destinations:
        site = SITES.get(key)
        if site is None:
            result.warnings.append(f"{key}: not in the rule table; check the site's review policy yourself")
            continue
        if not site.solicitation_allowed:
            result.errors.append(f"{site.name}: {site.notes[0]}")
            continue
        if site.reviewer_kinds is not None:
            outside = sorted(kinds - site.reviewer_kinds)
            if outside == sorted(kinds):
                result.errors.append(f"{site.name}: only {', '.join(sorted(site.reviewer_kinds))} may review here, "
                                     f"and the audience has none")
            elif outside:
                result.warnings.append(f"{site.name}: only {', '.join(sorted(site.reviewer_kinds))} may review here; "
                                       f"exclude {', '.join(outside)} from the audience")
        if kinds & INSIDER_KINDS and site.reviewer_kinds is None:
            result.warnings.append(f"{site.name}: insiders in the audience will be asked to disclose their relationship")
    return result


def needs_disclosure(kind: str) -> bool:
    """Insiders see a reminder on the action page to disclose their relationship."""
    return kind in INSIDER_KINDS
