"""`flask mail check-domain`: does the sending domain publish what mailbox providers require?

Looks up SPF (TXT at the domain), DMARC (TXT at `_dmarc.` the domain, or its organisational
domain) and, given a selector, DKIM, with dnspython, and says in one line per record what is
missing. Which servers may send, and the DKIM key itself, are the mail server's business
(docs/deliverability.md); this only reads DNS.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from email.utils import parseaddr

import click
import dns.exception
import dns.resolver
from flask import Flask
from flask.cli import AppGroup

mail = AppGroup("mail", help="Check what the mail setup needs outside the application (DNS).")


class DnsUnreachable(Exception):
    """No answer from any name server (as opposed to an answer saying there is no record)."""


@dataclass(frozen=True)
class Finding:
    record: str  # SPF, DMARC, DKIM
    status: str  # ok, missing, fix
    message: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def line(self) -> str:
        return f"{self.record:<6} {self.status.upper():<8} {self.message}"


def make_resolver(nameserver: str | None = None, port: int = 53, timeout: float = 5.0) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=nameserver is None)
    if nameserver is not None:
        resolver.nameservers = [nameserver]
        resolver.port = port
    resolver.lifetime = timeout
    resolver.timeout = min(timeout, 2.0)
    return resolver


def txt_records(resolver: dns.resolver.Resolver, name: str) -> list[str]:
    """The TXT strings at `name` (each record's pieces joined); [] if there are none."""
    try:
        answer = resolver.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.resolver.NoNameservers, dns.resolver.LifetimeTimeout, dns.exception.Timeout, OSError) as exc:
        raise DnsUnreachable(str(exc) or exc.__class__.__name__) from None
    return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]


def check_spf(records: list[str], domain: str) -> Finding:
    spf = [r for r in records if r.lower().split(" ", 1)[0] == "v=spf1"]
    if not spf:
        return Finding("SPF", "missing", f'no SPF record: add a TXT record at {domain} such as "v=spf1 mx -all" '
                                    "listing the servers that send for it (your relay's include: if you use one)")
    if len(spf) > 1:
        return Finding("SPF", "fix", f"{len(spf)} SPF records: there must be exactly one (RFC 7208 4.5); merge them")
    record = spf[0]
    terms = record.lower().split()
    if "+all" in terms or "all" in terms:
        return Finding("SPF", "fix", f"'{record}' allows every server on the internet: end it with -all or ~all")
    if not any(t.endswith("all") for t in terms) and not any(t.startswith("redirect=") for t in terms):
        return Finding("SPF", "fix", f"'{record}' has no -all/~all: mail from other servers is not refused")
    if "?all" in terms:
        return Finding("SPF", "fix", f"'{record}' ends in ?all (neutral): use -all or ~all")
    return Finding("SPF", "ok", record)


def _organisational(domain: str) -> str | None:
    # Without the public-suffix list: the last two labels (good enough for a hint, not for a verdict).
    labels = domain.rstrip(".").split(".")
    return ".".join(labels[-2:]) if len(labels) > 2 else None


def check_dmarc(resolver: dns.resolver.Resolver, domain: str) -> Finding:
    names = [f"_dmarc.{domain}"] + ([f"_dmarc.{org}"] if (org := _organisational(domain)) else [])
    for name in names:
        records = [r for r in txt_records(resolver, name) if r.replace(" ", "").lower().startswith("v=dmarc1")]
        if len(records) > 1:
            return Finding("DMARC", "fix", f"{len(records)} DMARC records at {name}: there must be exactly one")
        if records:
            record = records[0]
            tags = dict(part.strip().split("=", 1) for part in record.split(";") if "=" in part)
            policy = tags.get("p", "").strip().lower()
            where = "" if name == names[0] else f" (inherited from {name})"
            if policy not in ("none", "quarantine", "reject"):
                return Finding("DMARC", "fix", f"'{record}' has no valid p= policy{where}")
            if policy == "none":
                return Finding("DMARC", "ok", f"{record}{where} — p=none satisfies Gmail/Yahoo; "
                                              "quarantine or reject also protects the domain from spoofing")
            return Finding("DMARC", "ok", record + where)
    return Finding("DMARC", "missing", f'no DMARC record: add a TXT record at _dmarc.{domain} such as '
                                   f'"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}" '
                                   "(required by Gmail, Yahoo and Outlook for bulk senders)")


def check_dkim(resolver: dns.resolver.Resolver, domain: str, selector: str) -> Finding:
    name = f"{selector}._domainkey.{domain}"
    records = [r for r in txt_records(resolver, name) if "p=" in r.replace(" ", "")]
    if not records:
        return Finding("DKIM", "missing", f"no DKIM key at {name}: publish the public key your mail server signs with")
    if "p=;" in records[0].replace(" ", "") or records[0].replace(" ", "").endswith("p="):
        return Finding("DKIM", "fix", f"the key at {name} is revoked (empty p=)")
    return Finding("DKIM", "ok", f"key published at {name}")


def check_domain(domain: str, resolver: dns.resolver.Resolver, dkim_selector: str | None = None) -> list[Finding]:
    """Every finding for one sending domain; raises DnsUnreachable when DNS does not answer."""
    domain = domain.strip().rstrip(".").lower()
    findings = [check_spf(txt_records(resolver, domain), domain), check_dmarc(resolver, domain)]
    if dkim_selector:
        findings.append(check_dkim(resolver, domain, dkim_selector))
    return findings


def _sending_domains() -> list[str]:
    from core.org_settings import current_org

    org = current_org()
    return sorted({parseaddr(a)[1].rpartition("@")[2].lower() for a in (org.campaign_sender, org.transactional_sender)})


@mail.command("check-domain")
@click.argument("domain", required=False)
@click.option("--dkim-selector", help="Also check the DKIM key published under this selector.")
@click.option("--nameserver", help="Ask this DNS server (an IP address) instead of the system's.")
@click.option("--port", type=int, default=53, show_default=True, help="The name server's port.")
@click.option("--timeout", type=float, default=5.0, show_default=True, help="Seconds to wait for DNS.")
def check_domain_command(domain: str | None, dkim_selector: str | None, nameserver: str | None, port: int,
                         timeout: float) -> None:
    """Look up SPF and DMARC (and DKIM) of DOMAIN (default: the senders' domains) and say what is missing."""
    try:
        resolver = make_resolver(nameserver, port, timeout)
    except dns.resolver.NoResolverConfiguration:
        click.echo("Error: no DNS server configured on this machine; pass --nameserver", err=True)
        sys.exit(2)
    missing = False
    for name in [domain] if domain else _sending_domains():
        click.echo(f"{name}:")
        try:
            findings = check_domain(name, resolver, dkim_selector)
        except DnsUnreachable as exc:
            click.echo(f"Error: DNS is unreachable ({exc}); check the network or pass --nameserver", err=True)
            sys.exit(2)
        for finding in findings:
            click.echo("  " + finding.line())
            missing |= not finding.ok
    if missing:
        click.echo("See docs/deliverability.md for what each record does and what the mail server must add.")
    sys.exit(1 if missing else 0)


def init_app(app: Flask) -> None:
    app.cli.add_command(mail)
