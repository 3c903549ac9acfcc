"""Regenerate api/examples.json: every API operation called once, on demo data, with its example request.

The request examples are written here by hand; the response examples are what the API really
answered to them (shortened: lists to two items, long strings cut). Run it after an endpoint's
shape changed, read the diff, and commit it; tests/test_api_examples.py validates every example
against the OpenAPI document's schemas (and the request examples against the marshmallow schemas).

    PYTHONPATH=. .venv/bin/python scripts/harvest_api_examples.py
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"
STAMP = "2025-06-30T09:15:00+00:00"

# operationId: (method, path, request body or None). Ids are filled in from earlier answers with {name}.
CALLS: list[tuple[str, str, str, dict | None]] = [
    ("who_am_i", "GET", "/session", None),
    ("openapi_page", "GET", "/docs", None),
    ("get_settings", "GET", "/settings", None),
    ("put_settings", "PUT", "/settings", {
        "organisation_name": "Refill Collective", "postal_address": "Hauptstraße 1, 12345 Musterstadt",
        "privacy_url": "https://example.org/privacy", "accent_color": "#2e7d32"}),
    ("create_tag", "POST", "/tags", {"name": "press", "public": True, "label_de": "Presse", "label_en": "Press"}),
    ("list_tags", "GET", "/tags?limit=2", None),
    ("get_tag", "GET", "/tags/{tag}", None),
    ("patch_tag", "PATCH", "/tags/{tag}", {"label_en": "Press and media"}),
    ("create_supporter", "POST", "/supporters", {
        "email": "ada@example.org", "name": "Ada Lovelace", "kind": "fan", "language": "en", "country": "GB",
        "tags": ["press"], "consent": {"obtained_at": STAMP, "how": "signed the paper form at the trade fair",
                                       "text": "Yes, keep me informed about the refill campaign.",
                                       "text_version": "2025-06"}}),
    ("list_supporters", "GET", "/supporters?limit=2&status=active", None),
    ("get_supporter", "GET", "/supporters/{supporter}", None),
    ("patch_supporter", "PATCH", "/supporters/{supporter}", {"asks_per_month": 2, "timezone": "Europe/London"}),
    ("consents", "GET", "/supporters/{supporter}/consents", None),
    ("export", "GET", "/supporters/{supporter}/export", None),
    ("tagging", "POST", "/supporters/tagging", {"supporter_ids": ["{supporter}"], "add": ["press"]}),
    ("create_segment", "POST", "/segments", {
        "name": "Active fans", "description": "Fans who confirmed",
        "definition": {"all": [{"field": "kind", "op": "eq", "value": "fan"},
                               {"field": "status", "op": "eq", "value": "active"}]}}),
    ("list_segments", "GET", "/segments?limit=2", None),
    ("get_segment", "GET", "/segments/{segment}", None),
    ("patch_segment", "PATCH", "/segments/{segment}", {"description": "Fans who confirmed their address"}),
    ("count_segment", "GET", "/segments/{segment}/count", None),
    ("preview_segment", "GET", "/segments/{segment}/preview?limit=2", None),
    ("count_definition", "POST", "/segments/count", {
        "definition": {"any": [{"field": "tags", "op": "has", "value": "press"},
                               {"field": "engagement", "op": "gte", "value": 3}]}}),
    ("preview_definition", "POST", "/segments/preview", {
        "definition": {"field": "language", "op": "eq", "value": "de"}, "limit": 2}),
    ("create_user_", "POST", "/users", {"email": "kim@example.org", "password": "violet staircase at noon",
                                        "role": "manager"}),
    ("list_users", "GET", "/users?limit=2", None),
    ("get_user", "GET", "/users/{user}", None),
    ("create_token_", "POST", "/tokens", {"user_id": "{user}", "name": "crm sync", "role": "viewer",
                                          "expires_in_days": 90}),
    ("list_tokens", "GET", "/tokens?limit=2", None),
    ("create_campaign", "POST", "/campaigns", {
        "name": "Summer meet-up", "kind": "announcement",
        "audience": {"filter": {"field": "language", "op": "eq", "value": "en"}},
        "contents": {"en": {"subject": "See you at the summer meet-up, {{first_name|there}}?",
                            "body": "Hi {{first_name|there}},\n\nwe meet on **12 July** at the Altona station.\n\n"
                                    "[Preferences]({{preferences_url}}) · [Unsubscribe]({{unsubscribe_url}})"}},
        "rate_per_minute": 600}),
    ("list_campaigns", "GET", "/campaigns?limit=2", None),
    ("get_campaign", "GET", "/campaigns/{campaign}", None),
    ("update_campaign", "PATCH", "/campaigns/{campaign}", {"respect_quiet_hours": True}),
    ("preview_campaign", "POST", "/campaigns/{campaign}/preview", None),
    ("test_campaign", "POST", "/campaigns/{campaign}/test", {"to": "me@example.org", "language": "en"}),
    ("launch_campaign", "POST", "/campaigns/{campaign}/launch", None),
    ("pause_campaign", "POST", "/campaigns/{campaign}/pause", None),
    ("resume_campaign", "POST", "/campaigns/{campaign}/resume", None),
    ("campaign_stats", "GET", "/campaigns/{share}/stats", None),
    ("campaign_results", "GET", "/campaigns/{poll}/results?bucket=week", None),
    ("campaign_actions", "GET", "/campaigns/{petition}/actions?limit=2", None),
    ("campaign_chart", "GET", "/campaigns/{poll}/charts/options.svg", None),
    ("survey_text_answers", "GET", "/campaigns/{survey}/survey/answers?question=why&limit=2", None),
    ("survey_follow_ups", "GET", "/campaigns/{survey}/survey/follow-ups?limit=2", None),
    ("survey_export", "GET", "/campaigns/{survey}/survey/export?format=csv", None),
    ("report_bounce", "POST", "/campaigns/bounces", {"delivery_id": "{delivery}", "type": "hard",
                                                      "reason": "550 5.1.1 mailbox does not exist"}),
    ("petition_answer", "POST", "/campaigns/{petition}/answer", {"contents": {"en": {
        "subject": "The council answered our petition",
        "body": "Thank you for signing. The council will discuss the deposit on **3 September**.\n\n"
                "[Unsubscribe]({{unsubscribe_url}})"}}}),
    ("cancel_campaign", "POST", "/campaigns/{campaign}/cancel", None),
    ("create_dialog_topic", "POST", "/dialog/topics", {
        "name_en": "Refill stations", "name_de": "Nachfüllstationen",
        "description_en": "Where should the next station go, and what bothers you about the current ones?",
        "description_de": "Wo soll die nächste Station hin, und was stört dich an den bisherigen?",
        "audience_kinds": None, "visibility": "public", "answer_threshold": 2, "answer_deadline_days": 30}),
    ("list_dialog_topics", "GET", "/dialog/topics?limit=2", None),
    ("get_dialog_topic", "GET", "/dialog/topics/{topic}", None),
    ("patch_dialog_topic", "PATCH", "/dialog/topics/{topic}", {"answer_deadline_days": 21}),
    ("create_dialog_post", "POST", "/dialog/posts", {
        "supporter_id": "{author}", "topic_id": "{topic}", "kind": "idea", "title": "A station at the Altona market",
        "body": "The market hall has water and is open six days a week; a station there would reach many people.",
        "show_name": True}),
    ("duplicate_post_", "POST", "/dialog/posts", {  # the duplicate merged below (not an example of its own)
        "supporter_id": "{backer}", "topic_id": "{topic}", "kind": "idea", "title": "Refill at the Altona market?",
        "body": "Could you put a refill station in the Altona market hall?"}),
    ("list_dialog_posts", "GET", "/dialog/posts?status=new&limit=2", None),
    ("patch_dialog_post", "PATCH", "/dialog/posts/{post}", {"tags": ["stations", "altona"], "priority": 2,
                                                          "owner_id": "{admin}"}),
    ("publish_post_", "POST", "/dialog/posts/{post}/status", {"status": "published"}),
    ("publish_duplicate_", "POST", "/dialog/posts/{duplicate}/status", {"status": "published"}),
    ("back_dialog_post", "POST", "/dialog/posts/{post}/backings", {"supporter_id": "{backer}"}),
    ("back_again_", "POST", "/dialog/posts/{post}/backings", {"supporter_id": "{backer2}"}),
    ("merge_dialog_post", "POST", "/dialog/posts/{duplicate}/merge", {"into": "{post}"}),
    ("get_dialog_post", "GET", "/dialog/posts/{post}", None),
    ("dialog_post_backers", "GET", "/dialog/posts/{post}/backers", None),
    ("list_topic_posts", "GET", "/dialog/topics/{topic}/posts?limit=2", None),
    ("dialog_due", "GET", "/dialog/due?limit=2", None),
    ("dialog_post_status", "POST", "/dialog/posts/{post}/status", {
        "status": "answered", "answer": "Yes: the market hall agreed, and the station opens there on 1 September."}),
    ("dialog_topic_figures", "GET", "/dialog/topics/{topic}/figures", None),
    ("dialog_report", "GET", "/dialog/report", None),
    ("unback_dialog_post", "DELETE", "/dialog/posts/{post}/backings/{backer2}", None),
    ("list_event_types", "GET", "/webhooks/event-types", None),
    ("create_endpoint", "POST", "/webhooks/endpoints", {
        "url": "https://203.0.113.10/hooks/supporters", "description": "CRM sync",
        "event_types": ["supporter.joined", "action.recorded"], "headers": {"X-Crm-Source": "supporters"},
        "owner_email": "it@example.org"}),
    ("list_endpoints", "GET", "/webhooks/endpoints?limit=2", None),
    ("get_endpoint", "GET", "/webhooks/endpoints/{endpoint}", None),
    ("patch_endpoint", "PATCH", "/webhooks/endpoints/{endpoint}", {"event_types": ["*"]}),
    ("test_endpoint", "POST", "/webhooks/endpoints/{endpoint}/test", None),
    ("list_attempts", "GET", "/webhooks/endpoints/{endpoint}/attempts?limit=2", None),
    ("replay_events", "POST", "/webhooks/endpoints/{endpoint}/replay", {"since": "2025-06-01T00:00:00+00:00"}),
    ("rotate_secret", "POST", "/webhooks/endpoints/{endpoint}/rotate-secret", {"overlap_seconds": 3600}),
    ("start_supporter_export", "POST", "/exports/supporters", {"format": "csv", "status": ["active"], "tags": ["press"]}),
    ("start_consent_export", "POST", "/exports/consents", {"format": "jsonl", "since": "2025-01-01T00:00:00+00:00"}),
    ("get_transfer_job", "GET", "/jobs/{job}", None),
    ("download_transfer", "GET", "/jobs/{job}/download?token={download_token}", None),  # CSV: status only
    ("start_supporter_import", "POST", "/imports/supporters", None),  # multipart, below
    ("audit_trail", "GET", "/audit?limit=2", None),
    ("delete_endpoint", "DELETE", "/webhooks/endpoints/{endpoint}", None),
    ("revoke_token", "DELETE", "/tokens/{token}", None),
    ("deactivate_user", "POST", "/users/{user}/deactivate", None),
    ("delete_segment", "DELETE", "/segments/{segment}", None),
    ("delete_tag", "DELETE", "/tags/{tag}", None),
    ("erase", "DELETE", "/supporters/{supporter}", None),
]
# Steps that set up a later example and are no operation's example themselves.
SETUP = {"duplicate_post_", "publish_post_", "publish_duplicate_", "back_again_"}
# Queues worked off (as a worker would) after an operation, so that later answers show the result.
# Not the webhooks queue: a delivery would really connect to the endpoint, and the log would then
# depend on the network of whoever runs this.
WORK_AFTER = {"start_consent_export": "default"}
NPS = {"key": "nps", "type": "nps", "required": True,
       "label": {"en": "Would you recommend the refill stations?", "de": "Würdest du die Nachfüllstationen empfehlen?"}}
WHY = {"key": "why", "type": "long_text", "label": {"en": "What should we do better?", "de": "Was sollen wir besser machen?"}}
PICK = {"key": "station", "type": "single", "label": {"en": "Your station", "de": "Deine Station"},
        "options": {"en": ["Altona", "Ottensen"], "de": ["Altona", "Ottensen"]}}
SURVEY_BODY = ("Hi {{first_name|there}},\n\nhow do you like the refill stations? [Three short questions]({{action_url}}).\n\n"
               "[Unsubscribe]({{unsubscribe_url}})")
SURVEY = {"name": "Refill station survey", "kind": "survey", "settings": {"questions": [NPS, WHY, PICK]},
          "contents": {"en": {"subject": "Two minutes for the refill stations?", "body": SURVEY_BODY},
                       "de": {"subject": "Zwei Minuten für die Nachfüllstationen?", "body": SURVEY_BODY}}}
# Answers given on the survey's action page (the last asks for a personal reply).
SURVEY_ANSWERS = [{"q_nps": "9", "q_station": "0"},
                  {"q_nps": "10", "q_why": "More stations in the schools, please.", "q_station": "1"},
                  {"q_nps": "4", "q_why": "The Altona station was empty twice last week.", "q_station": "0"}]
CSV = "email,name\nkai@example.org,Kai\n"
MULTIPART = {"start_supporter_import": {"file": CSV, "tag": ["fair-2025"], "consent_note": "paper form at the trade fair",
                                        "consented_at": "2025-06-30", "dry_run": True}}
SIGN_IN = {"email": "admin@example.org", "password": PASSWORD}


def _shorten(value, depth=0):
    if isinstance(value, list):
        return [_shorten(v, depth + 1) for v in value[:2]]
    if isinstance(value, dict):
        return {k: _shorten(v, depth + 1) for k, v in value.items()}
    if isinstance(value, str) and len(value) > 240:
        return value[:200] + "…"
    return value


def _fill(value, ids):
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in ids:
        return ids[value[1:-1]]
    if isinstance(value, str):
        return value.format(**ids) if "{" in value and "}" in value and "first_name" not in value \
            and "_url" not in value else value
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from campaigns import demo
    from campaigns.models import Campaign, Delivery
    from campaigns.tracking import action_token
    from core.accounts import create_token, create_user
    from core.extensions import db
    from core.queues import make_worker
    from supporters.models import Supporter, SupporterStatus
    from wsgi import create_app

    tmp = Path(tempfile.mkdtemp(prefix="sp-examples-"))
    app = create_app({"APP_ENV": "testing", "INSTANCE_PATH": str(tmp), "OUTBOX_DIR": str(tmp / "outbox"),
                      "DATABASE_URL": f"sqlite:///{tmp / 'x.db'}", "PUBLIC_BASE_URL": "https://supporters.example.org",
                      "RATELIMIT_ENABLED": False,
                      # Webhook endpoints at a documentation address (TEST-NET-3): accepted without DNS.
                      "WEBHOOK_ALLOWED_NETWORKS": "203.0.113.0/24"})
    examples: dict[str, dict] = {}
    with app.app_context():
        upgrade()
        demo.fill(60, seed=3)
        admin = create_user("admin@example.org", PASSWORD, "admin")
        db.session.flush()
        _t, secret = create_token(admin, "examples")
        db.session.commit()
        by_name = {c.name: c.id for c in db.session.scalars(sa.select(Campaign))}
        ids = {"share": by_name["Share the refill map"], "poll": by_name["Which station next?"],
               "petition": by_name["Deposit on refill bottles"]}
        ids["delivery"] = db.session.scalar(sa.select(Delivery.id).where(Delivery.campaign_id == ids["share"],
                                                                          Delivery.status == "sent").limit(1))
        ids["admin"] = admin.id
        ids["author"], ids["backer"], ids["backer2"] = db.session.scalars(
            sa.select(Supporter.id).where(Supporter.status == SupporterStatus.ACTIVE).order_by(Supporter.id).limit(3))
        client = app.test_client()
        headers = {"Authorization": f"Bearer {secret}"}
        # A survey, sent and answered by three supporters on its action page: the survey operations' data.
        survey = client.post("/api/v1/campaigns", json=SURVEY, headers=headers)
        ids["survey"] = survey.get_json()["id"]
        launched = client.post(f"/api/v1/campaigns/{ids['survey']}/launch", headers=headers)
        make_worker(app, ["campaigns"]).work(burst=True)
        sent = db.session.scalars(sa.select(Delivery.id).where(Delivery.campaign_id == ids["survey"],
                                                               Delivery.status == "sent").order_by(Delivery.id)).all()
        if survey.status_code != 201 or launched.status_code != 202 or len(sent) < len(SURVEY_ANSWERS):
            print(f"survey: {survey.status_code} {launched.status_code}, {len(sent)} sent", file=sys.stderr)
            return 1
        pages = [f"/act/{action_token(delivery_id)}" for delivery_id in sent[:len(SURVEY_ANSWERS)]]
        posts = [(page, {"shown": ["nps", "why", "station"], "action": "submit", **answers})
                 for page, answers in zip(pages, SURVEY_ANSWERS, strict=True)] + [(pages[-1], {"reply": "1"})]
        for page, form in posts:
            answered = client.post(page, data=form)
            if answered.status_code not in (200, 303):
                print(f"survey answer: {answered.status_code} {answered.get_data(as_text=True)}", file=sys.stderr)
                return 1
        signed_in = client.post("/api/v1/session", json=SIGN_IN)
        examples["sign_in"] = {"request": SIGN_IN, "status": 200, "response": signed_in.get_json()}
        for op, method, path, body in CALLS:
            path = _fill(path, ids)
            body = _fill(body, ids)
            if op in MULTIPART:
                data = {k: str(v).lower() if isinstance(v, bool) else v for k, v in MULTIPART[op].items()}
                data["file"] = (io.BytesIO(CSV.encode()), "fair.csv")
                response = client.post("/api/v1" + path, data=data, headers=headers,
                                       content_type="multipart/form-data")
            else:
                response = client.open("/api/v1" + path, method=method, json=body, headers=headers)
            if response.status_code >= 400:
                print(f"{op}: {response.status_code} {response.get_data(as_text=True)}", file=sys.stderr)
                return 1
            entry: dict = {"status": response.status_code}
            if body is not None:
                entry["request"] = body
            if op in MULTIPART:
                entry["form"] = MULTIPART[op]
            if response.is_json:
                answer = response.get_json()
                entry["response"] = _shorten(answer)
                # A dead token or signing secret of a throw-away database, but it looks live: mask it.
                if isinstance(answer, dict) and str(answer.get("secret", "")).startswith("whsec_"):
                    entry["response"]["secret"] = "whsec_" + "x" * 44
                elif isinstance(answer, dict) and "secret" in answer:
                    entry["response"]["secret"] = f"spk_{answer['prefix']}_" + "x" * 43
                for key, name in (("create_tag", "tag"), ("create_supporter", "supporter"), ("create_segment", "segment"),
                                  ("create_user_", "user"), ("create_token_", "token"), ("create_campaign", "campaign"),
                                  ("start_supporter_export", "job"), ("create_dialog_topic", "topic"),
                                  ("create_dialog_post", "post"), ("duplicate_post_", "duplicate"),
                                  ("create_endpoint", "endpoint")):
                    if op == key:
                        ids[name] = answer["id"]
                if op == "get_transfer_job" and answer.get("download"):
                    ids["download_token"] = answer["download"]["url"].rsplit("token=", 1)[1]
            elif response.mimetype == "text/html":
                entry["response"] = _shorten(response.get_data(as_text=True))
            elif response.mimetype == "image/svg+xml":  # whole: a cut SVG would not show what one gets
                entry["response"] = response.get_data(as_text=True)
            if op in WORK_AFTER:
                make_worker(app, [WORK_AFTER[op]]).work(burst=True)
            if op not in SETUP:
                examples[op] = entry
        signed_out = client.delete("/api/v1/session")
        examples["sign_out"] = {"status": signed_out.status_code}
    target = ROOT / "api" / "examples.json"
    target.write_text(json.dumps(examples, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"{len(examples)} operations written to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
