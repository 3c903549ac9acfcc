from email import message_from_bytes

import pytest

from core.mail import FileOutbox, PermanentMailError, SMTPTransport, TransientMailError, build_message


def message(to="a@example.org", subject="Hallo Jürgen"):
    return build_message("Fans <fans@example.com>", to, subject, "Text body", "<p>HTML body</p>",
                         headers={"List-Unsubscribe": "<https://x.test/unsubscribe/t>"},
                         message_id="<d-1@example.com>")


def test_build_message_is_multipart_with_encoded_headers():
    parsed = message_from_bytes(message())
    assert parsed.get_content_type() == "multipart/alternative"
    assert str(parsed["Message-ID"]) == "<d-1@example.com>"
    assert parsed["List-Unsubscribe"] == "<https://x.test/unsubscribe/t>"
    from email.header import decode_header, make_header

    assert str(make_header(decode_header(parsed["Subject"]))) == "Hallo Jürgen"
    parts = [p.get_payload(decode=True).decode() for p in parsed.get_payload()]
    assert parts == ["Text body", "<p>HTML body</p>"]


def test_smtp_transport_keeps_one_connection_for_many_messages(smtp_sink):
    transport = SMTPTransport("127.0.0.1", smtp_sink.port)
    for i in range(5):
        transport.send("bounce@example.com", [f"r{i}@example.org"], message(f"r{i}@example.org"))
    transport.close()
    assert len(smtp_sink.messages) == 5
    assert smtp_sink.handler.connections == 1
    assert smtp_sink.handler.message_ids["<d-1@example.com>"] == 5


def test_smtp_5xx_is_permanent_and_4xx_is_transient(smtp_sink):
    smtp_sink.handler.rcpt_replies["gone@example.org"] = "550 5.1.1 no such user"
    smtp_sink.handler.data_replies["busy@example.org"] = ["451 4.3.0 try again later"]
    transport = SMTPTransport("127.0.0.1", smtp_sink.port)
    with pytest.raises(PermanentMailError) as permanent:
        transport.send("b@example.com", ["gone@example.org"], message("gone@example.org"))
    assert permanent.value.code == 550
    with pytest.raises(TransientMailError) as transient:
        transport.send("b@example.com", ["busy@example.org"], message("busy@example.org"))
    assert transient.value.code == 451
    transport.send("b@example.com", ["busy@example.org"], message("busy@example.org"))  # the retry works
    assert len(smtp_sink.messages) == 1


def test_smtp_transport_reconnects_when_an_idle_connection_was_dropped(smtp_sink):
    transport = SMTPTransport("127.0.0.1", smtp_sink.port)
    transport.send("b@example.com", ["a@example.org"], message())
    transport._smtp.sock.shutdown(2)  # the connection dies while idle
    transport._last_used -= 60
    transport.send("b@example.com", ["a@example.org"], message())
    assert len(smtp_sink.messages) == 2
    assert smtp_sink.handler.connections == 2


def test_smtp_connection_refused_is_transient():
    from tests.servers import free_port

    with pytest.raises(TransientMailError, match="cannot connect"):
        SMTPTransport("127.0.0.1", free_port(), timeout=2).send("b@example.com", ["a@example.org"], message())


def test_a_connection_dropped_during_a_send_is_transient_and_not_resent(smtp_sink):
    smtp_sink.handler.drop_next_data = 1
    transport = SMTPTransport("127.0.0.1", smtp_sink.port)
    with pytest.raises(TransientMailError):
        transport.send("b@example.com", ["a@example.org"], message())
    assert len(smtp_sink.messages) == 0
    transport.send("b@example.com", ["a@example.org"], message())  # the caller's retry reconnects
    assert len(smtp_sink.messages) == 1
    assert smtp_sink.handler.connections == 2


def test_file_outbox_writes_complete_eml_files(tmp_path):
    outbox = FileOutbox(tmp_path / "outbox")
    outbox.send("b@example.com", ["a@example.org"], message())
    files = list((tmp_path / "outbox").iterdir())
    assert len(files) == 1 and files[0].suffix == ".eml"
    parsed = message_from_bytes(files[0].read_bytes())
    assert parsed["X-Envelope-To"] == "a@example.org"
    assert parsed["Message-ID"] == "<d-1@example.com>"



@pytest.fixture
def ascii_sink():
    """A real SMTP server that does not offer SMTPUTF8."""
    from tests.smtp_sink import SMTPSink

    sink = SMTPSink(smtputf8=False).start()
    yield sink
    sink.stop()


def test_a_utf8_local_part_goes_out_with_smtputf8_when_the_server_offers_it(smtp_sink):
    transport = SMTPTransport("127.0.0.1", smtp_sink.port)
    transport.send("b@example.com", ["zoë.müller@example.org"], message("zoë.müller@example.org"))
    transport.close()
    assert [to for _f, to, _c in smtp_sink.messages] == [["zoë.müller@example.org"]]


def test_a_utf8_address_without_smtputf8_fails_only_itself_and_never_blames_the_recipient(ascii_sink):
    transport = SMTPTransport("127.0.0.1", ascii_sink.port)
    transport.send("b@example.com", ["first@example.org"], message("first@example.org"))
    with pytest.raises(PermanentMailError) as failed:
        transport.send("b@example.com", ["zoë@example.org"], message("zoë@example.org"))
    assert failed.value.reason == "smtputf8" and str(failed.value) == "server does not support SMTPUTF8"
    assert failed.value.recipient_refused is False
    # The same connection carries the next mail: no "503 nested MAIL command" for an innocent one.
    transport.send("b@example.com", ["next@example.org"], message("next@example.org"))
    transport.close()
    assert [to for _f, to, _c in ascii_sink.messages] == [["first@example.org"], ["next@example.org"]]
    assert ascii_sink.handler.connections == 1


def test_bytes_smtplib_cannot_send_fail_that_message_and_leave_a_clean_connection(smtp_sink):
    transport = SMTPTransport("127.0.0.1", smtp_sink.port)
    with pytest.raises(PermanentMailError) as failed:
        transport.send("b@example.com", ["a@example.org"], "not bytes: ä")  # type: ignore[arg-type]
    assert failed.value.reason == "unsendable" and failed.value.recipient_refused is False
    transport.send("b@example.com", ["next@example.org"], message("next@example.org"))
    assert [to for _f, to, _c in smtp_sink.messages] == [["next@example.org"]]


def test_only_a_refused_recipient_is_marked_as_the_recipients_fault(smtp_sink):
    smtp_sink.handler.rcpt_replies["gone@example.org"] = "550 5.1.1 no such user"
    smtp_sink.handler.data_replies["spammy@example.org"] = ["554 5.7.1 message refused"]
    transport = SMTPTransport("127.0.0.1", smtp_sink.port)
    with pytest.raises(PermanentMailError) as gone:
        transport.send("b@example.com", ["gone@example.org"], message("gone@example.org"))
    with pytest.raises(PermanentMailError) as refused:
        transport.send("b@example.com", ["spammy@example.org"], message("spammy@example.org"))
    assert (gone.value.recipient_refused, refused.value.recipient_refused) == (True, False)
    transport.send("b@example.com", ["ok@example.org"], message("ok@example.org"))
    assert [to for _f, to, _c in smtp_sink.messages] == [["ok@example.org"]]
    assert smtp_sink.handler.connections == 1


def test_a_bad_sequence_answer_is_about_the_session_and_never_permanent(smtp_sink):
    smtp_sink.handler.rcpt_replies["a@example.org"] = "503 5.5.1 Error: nested MAIL command"
    transport = SMTPTransport("127.0.0.1", smtp_sink.port)
    with pytest.raises(TransientMailError) as session_error:
        transport.send("b@example.com", ["a@example.org"], message())
    assert session_error.value.code == 503 and not isinstance(session_error.value, PermanentMailError)


def test_a_drop_after_the_final_dot_is_ambiguous_and_an_early_hang_up_is_not(smtp_sink):
    from core.mail import AmbiguousMailError

    smtp_sink.handler.drop_next_data = 1  # the sink hangs up after receiving the whole message
    transport = SMTPTransport("127.0.0.1", smtp_sink.port)
    with pytest.raises(AmbiguousMailError):
        transport.send("b@example.com", ["a@example.org"], message())
    smtp_sink.handler.rcpt_replies["a@example.org"] = "421 4.3.2 shutting down"
    with pytest.raises(TransientMailError) as early:
        transport.send("b@example.com", ["a@example.org"], message())
    assert not isinstance(early.value, AmbiguousMailError)


def test_a_message_with_dot_lines_arrives_unchanged(smtp_sink):
    from core.mail import build_message

    body = ".\r\n..leading dots\r\n.end"
    raw = build_message("b@example.com", "a@example.org", "dots", body)
    SMTPTransport("127.0.0.1", smtp_sink.port).send("b@example.com", ["a@example.org"], raw)
    assert smtp_sink.messages[0][2].rstrip(b"\r\n") == raw.rstrip(b"\r\n")


def test_meanwhile_runs_while_the_server_reads_and_its_error_changes_nothing(smtp_sink, caplog):
    """The engine builds its next message in `meanwhile`: after the message is on the wire, before
    the final reply; an error there is logged, and the message on the wire is still sent."""
    transport = SMTPTransport("127.0.0.1", smtp_sink.port)
    seen = []

    def count():
        seen.append(1)

    def fail():
        raise RuntimeError("building the next message failed")

    assert transport.send("b@example.com", ["a@example.org"], message(), meanwhile=count) is True
    assert transport.send("b@example.com", ["c@example.org"], message("c@example.org"), meanwhile=fail) is True
    # A refused recipient: nothing is on the wire, so nothing runs meanwhile.
    smtp_sink.handler.rcpt_replies["gone@example.org"] = "550 5.1.1 no such user"
    with pytest.raises(PermanentMailError):
        transport.send("b@example.com", ["gone@example.org"], message("gone@example.org"), meanwhile=count)
    assert transport.send("b@example.com", ["d@example.org"], message("d@example.org")) is True
    transport.close()
    assert seen == [1]  # once: for the message that went on the wire
    assert [to for _f, to, _c in smtp_sink.messages] == [["a@example.org"], ["c@example.org"], ["d@example.org"]]
    assert smtp_sink.handler.connections == 1  # the failure did not cost the connection
    assert "building the next message failed" in caplog.text


def test_file_outbox_runs_meanwhile_after_writing(tmp_path):
    outbox = FileOutbox(tmp_path / "outbox")
    seen = []
    assert outbox.send("b@example.com", ["a@example.org"], message(),
                       meanwhile=lambda: seen.append(len(list((tmp_path / "outbox").iterdir())))) is True
    assert seen == [1]
