import pytest

from campaigns.review_rules import SITES, check_review_campaign, needs_disclosure


def test_sites_that_forbid_solicitation_are_refused():
    check = check_review_campaign(["yelp", "google"], audience_kinds=["fan"])
    assert not check.ok
    assert check.errors == ["Yelp: Yelp forbids businesses to ask for reviews at all"]


def test_incentives_are_always_refused():
    check = check_review_campaign(["google"], audience_kinds=["fan"], incentive=True)
    assert check.errors == ["rewards for reviews are never allowed: remove the incentive"]


def test_employer_review_sites_need_former_employees():
    assert check_review_campaign(["kununu"], audience_kinds=["former_employee"]).ok
    refused = check_review_campaign(["kununu"], audience_kinds=["fan", "supplier"])
    assert refused.errors and "only former_employee may review here" in refused.errors[0]
    mixed = check_review_campaign(["kununu"], audience_kinds=["fan", "former_employee"])
    assert mixed.ok and mixed.warnings == ["kununu: only former_employee may review here; exclude fan from the audience"]


def test_insiders_in_the_audience_are_warned_about_disclosure():
    check = check_review_campaign(["trustpilot"], audience_kinds=None)
    assert check.ok
    assert "Trustpilot: insiders in the audience will be asked to disclose their relationship" in check.warnings


def test_unknown_sites_are_a_warning_not_a_refusal():
    check = check_review_campaign(["my-forum"], audience_kinds=["fan"])
    assert check.ok and "not in the rule table" in check.warnings[0]


@pytest.mark.parametrize("kind, expected", [("fan", False), ("other", False), ("former_employee", True),
                                            ("supplier", True), ("partner", True)])
def test_insiders_are_asked_to_disclose(kind, expected):
    assert needs_disclosure(kind) is expected


def test_every_site_documents_its_rule():
    assert all(site.notes for site in SITES.values())
