"""`flask outbox list|show` reads the embedded default's outbox: newest first, decoded, clear errors."""

import os
import time

from core.mail import FileOutbox, build_message


def _write(app, to: str, subject: str, text: str) -> None:
    outbox = FileOutbox(app.config["OUTBOX_DIR"])
    outbox.send("supporters@example.org", [to], build_message("Supporters <supporters@example.org>", to, subject,
                                                              text, "<p>html part</p>"))


def test_list_shows_the_newest_first_with_decoded_subjects_and_show_prints_the_text_part(app, runner):
    _write(app, "ada@example.org", "First", "one")
    time.sleep(0.01)
    _write(app, "zoë.müller@bücher.example", "Grüße aus Köln", "Hallo Zoë,\nhttp://x.test/confirm/abc\n")
    listed = runner.invoke(args=["outbox", "list"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.strip().splitlines()
    assert len(lines) == 2
    assert "Grüße aus Köln" in lines[0] and "zoë.müller@xn--bcher-kva.example" in lines[0]
    assert "First" in lines[1]
    newest = lines[0].split()[0]
    shown = runner.invoke(args=["outbox", "show", newest])
    assert shown.exit_code == 0, shown.output
    assert "Subject: Grüße aus Köln" in shown.output and "http://x.test/confirm/abc" in shown.output
    assert runner.invoke(args=["outbox", "show", "latest"]).output == shown.output
    html = runner.invoke(args=["outbox", "show", newest, "--part", "html"])
    assert "<p>html part</p>" in html.output
    only = runner.invoke(args=["outbox", "list", "--to", "ADA@"])
    assert len(only.output.strip().splitlines()) == 1 and "First" in only.output


def test_unknown_or_ambiguous_ids_and_an_smtp_setup_are_clear_errors(app, runner, tmp_path):
    assert "No mail" in runner.invoke(args=["outbox", "list"]).output
    _write(app, "a@example.org", "A", "a")
    _write(app, "b@example.org", "B", "b")
    missing = runner.invoke(args=["outbox", "show", "ffffffffffff"])
    assert missing.exit_code == 2 and "no mail with ID 'ffffffffffff'" in missing.output
    ambiguous = runner.invoke(args=["outbox", "show", ""])
    assert ambiguous.exit_code == 2
    assert runner.invoke(args=["outbox", "list", "--limit", "0"]).exit_code == 2
    before, app.config["SMTP"] = app.config["SMTP"], {"host": "127.0.0.1"}
    try:
        result = runner.invoke(args=["outbox", "list"])
        assert result.exit_code == 2 and "SMTP_URL is set" in result.output
    finally:
        app.config["SMTP"] = before
    assert os.listdir(app.config["OUTBOX_DIR"])  # reading never removes anything
