"""The SSRF guard: an endpoint URL must be HTTP(S), carry no credentials and resolve only to
public addresses, unless WEBHOOK_ALLOWED_HOSTS / WEBHOOK_ALLOWED_NETWORKS permit it.

The check runs when an endpoint is saved and again before every delivery run, and the delivery
connects to the very address that was checked (never resolving the name a second time), so a DNS
answer that changes in between (rebinding) cannot redirect a delivery to an internal address.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.errors import ValidationFailed

MAX_URL = 2000
# Cloud metadata services that are not link-local (AWS IPv6, Alibaba).
METADATA = (ipaddress.ip_network("fd00:ec2::254/128"), ipaddress.ip_network("100.100.100.200/32"))


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written (the Host header and TLS server name)
    port: int
    path: str  # path and query, at least "/"
    address: str  # the checked IP address to connect to


class Refused(ValidationFailed):
    """The URL is not one we may deliver to; `errors` names the field `url`."""

    def __init__(self, message: str):
        super().__init__({"url": [message]})


def parse(url: str, require_https: bool) -> tuple[str, str, int, str]:
    """Syntax only: (scheme, host, port, path); raises Refused."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise Refused(f"must be an http(s) URL of at most {MAX_URL} characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise Refused("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 - raises ValueError on a malformed IPv6 literal
    except ValueError:
        raise Refused("is not a valid URL") from None
    allowed = ("https",) if require_https else ("http", "https")
    if parts.scheme not in allowed:
        raise Refused("must start with https://" if require_https else "must start with http:// or https://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise Refused("must not contain credentials (user:password@); use custom headers instead")
    if parts.fragment:
        raise Refused("must not contain a fragment (#…)")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused("the port is not a number between 1 and 65535") from None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise Refused("names no host")
    try:
        host.encode("idna")
    except UnicodeError:
        raise Refused("the host name is not valid") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port, path


def forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address may not be reached (None: a public address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    for kind in ("loopback", "link_local", "multicast", "unspecified", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if any(address in net for net in METADATA):
        return "metadata"
    if not address.is_global:
        return "non-public"
    return None


def resolve(url: str, config) -> Target:
    """Check the URL and its addresses now; the Target names the address to connect to."""
    scheme, host, port, path = parse(url, config["WEBHOOK_REQUIRE_HTTPS"])
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise Refused(f"the host {host!r} does not resolve") from None
    addresses = []
    for *_rest, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    host_allowed = host.lower() in config["WEBHOOK_ALLOWED_HOSTS"]
    for address in addresses:
        reason = forbidden(address)
        if reason and not host_allowed and not any(address in net for net in config["WEBHOOK_ALLOWED_NETWORKS"]):
            # Every address must pass: a name with one public and one internal address is refused.
            raise Refused(f"resolves to a {reason} address ({address}); only public addresses are allowed "
                          "unless WEBHOOK_ALLOWED_HOSTS or WEBHOOK_ALLOWED_NETWORKS permits it")
    return Target(scheme, host, port, path, str(addresses[0]))
