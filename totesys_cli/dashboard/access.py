"""Who may ask the dashboard: the host names a request may name (so a page on another
site cannot read the figures through DNS rebinding) and, when a token is set, only a
browser that showed it once (then kept in an HttpOnly cookie)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from totesys_cli.errors import ConfigError

log = logging.getLogger(__name__)

TOKEN_LENGTH = 16  # the fewest characters a token may have
COOKIE = "totesys_dashboard"


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    address = _address(host)
    return host == "localhost" or (address is not None and address.is_loopback)


def is_every_address(host: str) -> bool:
    address = _address(host)
    return not host or (address is not None and address.is_unspecified)


@dataclass(frozen=True)
class Access:
    """The host names a request may name, and the token it must have shown."""

    hosts: frozenset[str]
    token: str | None = None

    @classmethod
    def decide(
        cls, bind: str, token: str | None, no_auth: bool, allowed: Iterable[str] = ()
    ) -> Access:
        """What a server bound to `bind` requires; a reachable bind without a token is
        refused unless `no_auth` says that is meant."""
        token = token or None
        if token is not None and len(token) < TOKEN_LENGTH:
            raise ConfigError(
                f"the dashboard token has {len(token)} characters; give at least {TOKEN_LENGTH}",
                "Make one with: python -c 'import secrets; print(secrets.token_urlsafe())'",
            )
        if token is None and not no_auth and not is_loopback(bind):
            raise ConfigError(
                f"--host {bind} lets other machines reach the dashboard, and it has no token",
                "Give --token (or TOTESYS_DASHBOARD_TOKEN), or --no-auth to serve it to anyone "
                "who can reach the address",
            )
        if no_auth and token is None and not is_loopback(bind):
            log.warning(
                "the dashboard on %s has no access token (--no-auth): anyone who can reach "
                "it can read every figure",
                bind,
            )
        hosts = {"localhost", "127.0.0.1", "::1", *(h.lower() for h in allowed)}
        if is_every_address(bind):
            hosts |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        else:
            hosts.add(bind.strip("[]").lower())
        return cls(frozenset(hosts), token)

    def host_allowed(self, header: str) -> bool:
        name = header.strip().lower()
        if name.startswith("["):  # [::1]:8050
            name = name[1 : name.find("]")] if "]" in name else ""
        elif name.count(":") == 1:
            name = name.split(":", 1)[0]
        return name in self.hosts

    def cookie_value(self) -> str:
        """What the cookie holds: derived from the token, so the token is not in it."""
        return hashlib.sha256(f"totesys-dashboard:{self.token or ''}".encode()).hexdigest()

    def shown_in_cookie(self, header: str) -> bool:
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and hmac.compare_digest(value.encode(), self.cookie_value().encode()):
                return True
        return False

    def shown_in_url(self, value: str) -> bool:
        return self.token is not None and hmac.compare_digest(value.encode(), self.token.encode())
