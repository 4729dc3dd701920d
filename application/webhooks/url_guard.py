"""Which webhook URLs may be called (SPEC §12).

``https://`` only, and the name must not resolve to a loopback, private,
link-local, multicast, reserved or cloud metadata address — every address it
resolves to is checked, so a name with one public and one private address is
refused. The check runs when an endpoint is created or changed *and* before
every delivery (a name may be re-pointed later); the delivery then connects
to the very address that was checked, so a DNS answer cannot change between
the check and the connection.

``SUITE_WEBHOOKS_ALLOW_PRIVATE=1`` (development and tests, whose receivers
listen on 127.0.0.1) lifts the address check and also accepts ``http://``.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from application.settings import env_flag
from domain.errors import InvalidRequest

MAX_URL_LENGTH = 2048
#: Cloud metadata services answer on these even where they are not link-local.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)

Resolver = Callable[[str, int], Sequence[str]]


def allow_private_from_env() -> bool:
    return env_flag(os.environ.get("SUITE_WEBHOOKS_ALLOW_PRIVATE"))


def system_resolver(host: str, port: int) -> Sequence[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class Target:
    """Where a delivery connects: the URL's parts and the address that was checked."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


class WebhookUrlRefused(InvalidRequest):
    code = "webhook_url_not_allowed"


def _refuse(url: str, reason: str) -> WebhookUrlRefused:
    return WebhookUrlRefused(
        f"The webhook URL is not allowed: {reason}.",
        details={"fields": {"url": [reason]}, "url": url[:200]},
    )


def is_forbidden_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip in METADATA_ADDRESSES
        or ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


class UrlGuard:
    def __init__(self, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
        self.allow_private = allow_private
        self.resolver = resolver

    def check_form(self, url: str) -> tuple[str, str, int, str]:
        """The URL's scheme, host, port and path, or a refusal; resolves nothing."""
        if len(url) > MAX_URL_LENGTH:
            raise _refuse(url, f"longer than {MAX_URL_LENGTH} characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise _refuse(url, "not a URL") from None
        schemes = ("https", "http") if self.allow_private else ("https",)
        if parts.scheme not in schemes:
            raise _refuse(url, "must start with https://")
        if not parts.hostname:
            raise _refuse(url, "names no host")
        if parts.username or parts.password:
            raise _refuse(url, "must not carry credentials")
        if parts.fragment:
            raise _refuse(url, "must not have a #fragment")
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        default_port = 443 if parts.scheme == "https" else 80
        return parts.scheme, parts.hostname, port or default_port, path

    def resolve(self, url: str) -> Target:
        """Check the URL and every address its host resolves to; the address to use."""
        scheme, host, port, path = self.check_form(url)
        try:
            addresses = list(self.resolver(host, port))
        except (OSError, UnicodeError):
            raise _refuse(url, f"the host {host!r} does not resolve") from None
        if not addresses:
            raise _refuse(url, f"the host {host!r} does not resolve")
        if not self.allow_private:
            forbidden = [a for a in addresses if is_forbidden_address(a)]
            if forbidden:
                raise _refuse(
                    url, f"{host} resolves to a non-public address ({', '.join(forbidden)})"
                )
        return Target(scheme, host, port, path, addresses[0])
