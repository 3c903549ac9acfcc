import subprocess
import sys

import sqlalchemy as sa

from supporters.models import ConsentEvent, Supporter, Suppression, Tag, supporter_tags
from tests.factories import make_supporter


def test_is_empty_is_silent_and_answers_with_the_exit_code(runner, db):
    result = runner.invoke(args=["demo", "--is-empty"])
    assert result.exit_code == 0 and result.output == ""
    make_supporter()
    result = runner.invoke(args=["demo", "--is-empty"])
    assert result.exit_code == 1 and result.output == ""


def test_demo_fills_an_empty_database_with_a_realistic_base(runner, db):
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert "3000 supporters" in result.stdout
    count = lambda stmt: db.session.scalar(stmt)  # noqa: E731
    assert count(sa.select(sa.func.count()).select_from(Supporter)) == 3000
    kinds = dict(db.session.execute(sa.select(Supporter.kind, sa.func.count()).group_by(Supporter.kind)).all())
    assert {k.value for k in kinds} == {"fan", "former_employee", "supplier", "partner", "other"}
    statuses = {s.value for s in db.session.scalars(sa.select(Supporter.status).distinct())}
    assert statuses == {"active", "pending", "unsubscribed"}
    assert set(db.session.scalars(sa.select(Supporter.language).distinct())) == {"de", "en"}
    assert count(sa.select(sa.func.count()).select_from(Tag).where(Tag.public)) >= 3
    assert count(sa.select(sa.func.count()).select_from(supporter_tags)) > 1000
    assert count(sa.select(sa.func.count()).where(Supporter.referred_by_id.is_not(None))) > 200
    assert count(sa.select(sa.func.count()).select_from(ConsentEvent)) > 5000
    unsubscribed = count(sa.select(sa.func.count()).where(Supporter.status == "unsubscribed"))
    assert count(sa.select(sa.func.count()).select_from(Suppression)) == unsubscribed
    # Every active supporter has a referral link and a confirmed consent.
    assert count(sa.select(sa.func.count()).where(Supporter.status == "active", Supporter.referral_code.is_(None))) == 0
    emails = db.session.scalars(sa.select(Supporter.email)).all()
    assert all(e.rsplit("@", 1)[1] in ("example.org", "example.com", "example.net") for e in emails)
    assert runner.invoke(args=["demo", "--is-empty"]).exit_code == 1


def test_demo_refuses_a_database_that_already_has_supporters(runner, db):
    make_supporter()
    result = runner.invoke(args=["demo", "--supporters", "50"])
    assert result.exit_code == 1 and "only fills an empty database" in result.stderr
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Supporter)) == 1


def test_demo_as_a_subprocess_then_the_export_lists_it(db, subprocess_env):
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    empty = subprocess.run([*flask, "demo", "--is-empty"], env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert empty.returncode == 0 and empty.stdout == "" and empty.stderr == ""
    result = subprocess.run([*flask, "demo", "--supporters", "200"], env=subprocess_env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    exported = subprocess.run([*flask, "export", "supporters", "--quiet"], env=subprocess_env, capture_output=True,
                              text=True, timeout=120)
    assert exported.returncode == 0 and len(exported.stdout.strip().splitlines()) == 201


def test_demo_includes_a_sent_campaign_of_each_kind_whose_stats_show_a_funnel(runner, db, client):
    from campaigns.models import Campaign
    from tests.actions_helpers import auth

    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert "5 campaigns" in result.stdout and "no mail went out" in result.stdout
    headers = auth("manager")
    campaigns = db.session.execute(sa.select(Campaign.id, Campaign.kind).order_by(Campaign.id)).all()
    db.session.commit()
    assert [k.value for _id, k in campaigns] == ["announcement", "share", "review", "vote", "vote"]
    seen = set()
    for campaign_id, kind in campaigns:
        response = client.get(f"/api/v1/campaigns/{campaign_id}/stats", headers=headers)
        assert response.status_code == 200, response.get_json()
        stats = response.get_json()
        assert stats["status"] == "sent" and stats["progress"] == 1.0
        assert stats["deliveries"]["sent"] > 100 and stats["skipped"]["unsubscribed"] > 0
        funnel = stats["results"]["funnel"]
        assert funnel["audience"] > funnel["sent"] > funnel["clicked"] > 0, (kind, funnel)
        if kind.value == "announcement":
            assert funnel["acted"] == 0  # an announcement asks for no action: the funnel ends at clicks
            continue
        assert funnel["clicked"] >= funnel["acted"] > 0, (kind, funnel)
        figures = stats["results"][kind.value]
        if kind.value == "share":
            assert figures["shares"] > 0 and figures["visits"] > 0 and funnel["newcomers"] > 0
        elif kind.value == "review":
            assert figures["confirmations"] > 0 and figures["per_destination"]["google"] > 0
        else:
            seen.add(figures["type"])
            if figures["type"] == "poll":
                assert figures["voters"] == sum(o["votes"] for o in figures["options"]) > 0
            else:
                assert 0 < figures["signatures"] < figures["goal"]
    assert seen == {"poll", "petition"}


def test_demo_campaign_export_lists_the_deliveries_with_results(runner, db):
    from campaigns.models import Campaign, Delivery

    assert runner.invoke(args=["demo", "--supporters", "300"]).exit_code == 0
    share = db.session.scalar(sa.select(Campaign.id).where(Campaign.kind == "share"))
    deliveries = db.session.scalar(sa.select(sa.func.count()).where(Delivery.campaign_id == share))
    db.session.commit()
    result = runner.invoke(args=["export", "campaign", str(share), "--quiet"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == deliveries + 1
    assert any(",share:" in line for line in lines[1:])
