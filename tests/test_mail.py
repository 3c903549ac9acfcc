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

