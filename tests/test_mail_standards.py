"""Addresses, headers and placeholders as the mail standards define them (issue 18).

Both message builders (the campaign's pre-compiled template and core.mail.build_message) must
put out CRLF only, encoded and folded headers, A-label domains, and never a header that the data
chose. Every raw message is parsed again with the standard library to prove it.
"""

from __future__ import annotations

from email import message_from_bytes, policy
from email.header import decode_header, make_header

import pytest

from campaigns.render import CompiledContent
from core.addresses import InvalidAddress, parse_address, parse_sender, wire_address
from core.errors import ValidationFailed
from core.headers import check_header_text, header_line
from core.mail import build_message
from tests.smtp_sink import wire_problems

INJECTIONS = ["Hello\r\nBcc: x@evil.example\r\n\r\nbody", "Hi\nReply-To: x@evil.example", "Hi\rX-Evil: 1",
              "Hi\x00there", "Hi\u2028Bcc: x@evil.example", "Hi\x85Bcc: x@evil.example"]
ADDRESSES = ["ann@example.org", "x@bücher.example", "zoë.müller@example.com", "用户@例子.广告"]


def headers_of(raw: bytes) -> dict[str, list[str]]:
    msg = message_from_bytes(raw, policy=policy.SMTPUTF8)
    found: dict[str, list[str]] = {}
    for name, value in msg.items():
        found.setdefault(name.lower(), []).append(str(value))
    return found


def assert_clean(raw: bytes) -> None:
    assert wire_problems(raw) == []
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        assert len(line) <= 998
    assert not {"bcc", "reply-to", "x-evil"} & set(headers_of(raw))


def campaign_message(subject="News, {{first_name}}", to="ann@example.org", first_name="Ann",
                     sender="Supporters <news@example.org>", headers=None) -> bytes:
    content = CompiledContent.compile(sender, subject, "Hello {{first_name|friend}}!\n\n[Prefs]({{preferences_url}})")
    return content.message(to, "<d1.c1@example.org>", {"first_name": first_name, "preferences_url": "https://x.test/p"},
                           headers or {"List-Unsubscribe": "<https://x.test/u/" + "t" * 150 + ">"})


@pytest.mark.parametrize("to", ADDRESSES)
def test_both_builders_write_crlf_only_with_the_domain_in_a_labels(to):
    for raw in (campaign_message(to=to), build_message("Fans <fans@example.org>", to, "Grüße", "Text", "<p>HTML</p>")):
        assert_clean(raw)
        expected = wire_address(to)
        assert headers_of(raw)["to"] == [expected]
        assert "xn--" in expected or expected.rpartition("@")[2].isascii()


@pytest.mark.parametrize("value", INJECTIONS)
def test_injected_header_text_is_defused_by_both_builders(value):
    for raw in (campaign_message(subject=value), campaign_message(first_name=value),
                campaign_message(sender=f"{value} <news@example.org>".replace("\r\n\r\n", " ")),
                build_message("Fans <fans@example.org>", "a@example.org", value, "t", "<p>h</p>",
                              headers={"X-Note": value})):
        assert_clean(raw)


def test_long_and_non_ascii_subjects_are_encoded_and_folded():
    raw = campaign_message(subject="Neuigkeiten für dich, {{first_name}}: " + "Füchse und Bären " * 10, first_name="Zoë",
                           headers={"X-Long": "word " * 40})
    assert_clean(raw)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()  # RFC 2047 encoded words, no raw 8-bit in a header for an ASCII address
    subject = str(make_header(decode_header(message_from_bytes(raw)["Subject"])))
    assert subject.startswith("Neuigkeiten für dich, Zoë: Füchse und Bären")
    assert max(len(line) for line in head.split(b"\r\n")) <= 78


def test_header_line_is_a_plain_join_for_the_common_case():
    assert header_line("Subject", "Hello Ann") == "Subject: Hello Ann"
    long_url = "<https://x.test/unsubscribe/" + "a" * 200 + ">"
    assert header_line("List-Unsubscribe", long_url) == "List-Unsubscribe: " + long_url


def test_a_name_without_a_first_name_gets_the_fallback_not_an_empty_salutation():
    content = CompiledContent.compile("news@example.org", "Hallo {{first_name}}!", "Hallo {{ first_name | zusammen }}!",
                                      language="de")
    subject, text, _html = content.render({"first_name": ""})
    assert subject == "Hallo du!"  # the language's default for a bare {{first_name}}
    assert text == "Hallo zusammen!"
    assert content.render({"first_name": "Zoë"})[:2] == ("Hallo Zoë!", "Hallo Zoë!")


def test_fallbacks_are_checked_like_the_rest_of_the_content():
    with pytest.raises(ValidationFailed) as exc:
        CompiledContent.compile("news@example.org", "Hi {{first_name|a\r\nBcc: x}}", "x")
    assert "subject" in exc.value.errors
    with pytest.raises(ValidationFailed):
        CompiledContent.compile("news@example.org", "Hi", "[x]({{unsubscribe_url|https://evil.example}})")


def test_addresses_are_normalised_at_the_edge_and_refused_with_the_field():
    assert parse_address("  Zoë.Müller@Example.COM ") == "Zoë.Müller@example.com"
    assert parse_address("x@BÜCHER.example") == "x@bücher.example"
    for bad in ("not an address", "a@b\r\nBcc: c@d", "x@-bad-.example", ""):
        with pytest.raises(ValidationFailed) as exc:
            parse_address(bad, "to")
        assert list(exc.value.errors) == ["to"]


def test_a_stored_address_that_cannot_go_on_the_wire_raises_invalid_address():
    for bad in ("a b@example.org", "a@example.org\r\nBcc: x@y", "nobody", "a@exa mple.org"):
        with pytest.raises(InvalidAddress):
            wire_address(bad)


def test_sender_names_with_line_breaks_are_refused_and_good_ones_kept():
    assert parse_sender("Grüne Füchse <news@Bücher.example>") == '"Grüne Füchse" <news@bücher.example>'
    for bad in ("Evil\r\nBcc: x@evil.example <news@example.org>", "a@example.org, b@example.org <c@example.org>"):
        with pytest.raises(ValidationFailed) as exc:
            parse_sender(bad)
        assert list(exc.value.errors) == ["sender"]
    with pytest.raises(ValidationFailed) as exc:
        check_header_text({"name": "Ann\nBcc: x"})
    assert "U+000A" in exc.value.errors["name"][0]
