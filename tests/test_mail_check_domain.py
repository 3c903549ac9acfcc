"""`flask mail check-domain` against a tiny DNS server on loopback (no internet needed)."""

from __future__ import annotations

import socket
import threading

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from tests.servers import free_port

ZONE = {
    "good.example.": ['"v=spf1 mx include:_spf.relay.example -all"'],
    "_dmarc.good.example.": ['"v=DMARC1; p=quarantine; rua=mailto:dmarc@good.example"'],
    "s1._domainkey.good.example.": ['"v=DKIM1; k=rsa; " "p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"'],
    "bare.example.": ['"some-site-verification=abc"'],
    "open.example.": ['"v=spf1 +all"'],
    "two.example.": ['"v=spf1 mx -all"', '"v=spf1 a -all"'],
    "_dmarc.open.example.": ['"v=DMARC1; p=none"'],
    "mail.sub.example.": ['"v=spf1 ip4:192.0.2.1 ~all"'],
    "_dmarc.sub.example.": ['"v=DMARC1; p=reject"'],
}


class TinyDns:
    """Answers TXT queries from ZONE over UDP; every other name is NXDOMAIN."""

    def __init__(self):
        self.port = free_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text()
            if name not in ZONE:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.TXT:
                response.answer.append(dns.rrset.from_text_list(name, 300, "IN", "TXT", ZONE[name]))
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def tiny_dns():
    server = TinyDns()
    yield server
    server.close()


def check(runner, tiny_dns, *args):
    return runner.invoke(args=["mail", "check-domain", *args, "--nameserver", "127.0.0.1",
                               "--port", str(tiny_dns.port), "--timeout", "3"])


def test_a_domain_with_spf_dmarc_and_dkim_passes(runner, tiny_dns):
    result = check(runner, tiny_dns, "good.example", "--dkim-selector", "s1")
    assert result.exit_code == 0, result.output
    assert "SPF    OK       v=spf1 mx include:_spf.relay.example -all" in result.output
    assert "DMARC  OK       v=DMARC1; p=quarantine" in result.output
    assert "DKIM   OK       key published at s1._domainkey.good.example" in result.output


def test_a_domain_without_records_is_told_what_to_add(runner, tiny_dns):
    result = check(runner, tiny_dns, "bare.example", "--dkim-selector", "s1")
    assert result.exit_code == 1
    assert 'SPF    MISSING  no SPF record: add a TXT record at bare.example such as "v=spf1 mx -all"' in result.output
    assert "DMARC  MISSING  no DMARC record: add a TXT record at _dmarc.bare.example" in result.output
    assert "DKIM   MISSING  no DKIM key at s1._domainkey.bare.example" in result.output
    assert "docs/deliverability.md" in result.output


def test_unsafe_or_broken_records_are_named(runner, tiny_dns):
    result = check(runner, tiny_dns, "open.example")
    assert result.exit_code == 1
    assert "allows every server on the internet" in result.output
    assert "p=none satisfies Gmail/Yahoo" in result.output
    assert "2 SPF records: there must be exactly one" in check(runner, tiny_dns, "two.example").output


def test_a_subdomain_inherits_the_dmarc_policy_of_its_organisational_domain(runner, tiny_dns):
    result = check(runner, tiny_dns, "mail.sub.example")
    assert result.exit_code == 0, result.output
    assert "v=DMARC1; p=reject (inherited from _dmarc.sub.example)" in result.output


def test_without_a_domain_the_senders_domains_are_checked(runner, tiny_dns, app):
    from core.extensions import db
    from core.org_settings import update_settings

    with app.app_context():
        update_settings({"campaign_sender": "news@good.example", "transactional_sender": "hello@bare.example"})
        db.session.commit()
    result = check(runner, tiny_dns)
    assert "good.example:" in result.output and "bare.example:" in result.output
    assert result.exit_code == 1


def test_unreachable_dns_gives_one_clear_line(runner):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    silent.bind(("127.0.0.1", 0))
    try:
        result = runner.invoke(args=["mail", "check-domain", "good.example", "--nameserver", "127.0.0.1",
                                     "--port", str(silent.getsockname()[1]), "--timeout", "1"])
    finally:
        silent.close()
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "DNS is unreachable" in errors[0], result.output
    assert "Traceback" not in result.output
