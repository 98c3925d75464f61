"""Requests to URLs that admins type in (outgoing webhooks) reach the public internet only.

A URL's host is resolved once, every address it resolves to is checked, and the connection goes to the
checked address (the Host header and TLS server name stay the URL's), so a name that resolves to a public
address when it is checked and to an internal one a moment later (DNS rebinding) cannot steer the request
inside. Refused: loopback, private (RFC 1918), link-local (169.254/16, fe80::/10: cloud metadata), unique
local (fc00::/7), shared CGNAT (100.64/10), multicast, reserved, unspecified and broadcast addresses, and
those hidden in IPv6 forms (IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64). Only networks an operator
lists in `[webhooks] allowed_networks` are let through anyway.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import httpx

__all__ = [
    "AddressNotAllowed",
    "AddressPolicy",
    "NameNotResolved",
    "PinnedTransport",
    "Resolver",
    "default_port",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: host, port -> the addresses a connection to them could reach. Tests pass their own.
Resolver = Callable[[str, int], Sequence[IPAddress]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class AddressNotAllowed(Exception):
    """The host is, or resolves to, an address requests must not go to; the message names it."""


class NameNotResolved(Exception):
    """The host name does not resolve (yet)."""


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address `getaddrinfo` gives for `host` (numeric spellings like 2130706433 or 127.1 included).

    Raises:
        NameNotResolved: the name has no address.
    """
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise NameNotResolved(f"{host} does not resolve") from error
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in found))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition form carries (mapped, compatible, 6to4, Teredo, NAT64)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or address in _NAT64_LOCAL or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses outgoing requests may go to: public ones, plus `allowed_networks`."""

    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def allowing(cls, networks: Iterable[str]) -> AddressPolicy:
        """A policy that also lets through `networks` (CIDR strings, e.g. "10.1.2.0/24")."""
        return cls(tuple(ipaddress.ip_network(network, strict=False) for network in networks))

    def allows(self, address: IPAddress) -> bool:
        """Whether a request may connect to `address`."""
        if any(address in network for network in self.allowed_networks):
            return True
        if isinstance(address, ipaddress.IPv6Address):
            embedded = _embedded_ipv4(address)
            if embedded is not None:
                return self.allows(embedded)
        return address.is_global and not (
            address.is_multicast or address.is_reserved or address.is_link_local or address.is_private
        )

    def check(self, host: str, port: int, resolve: Resolver = system_resolver) -> IPAddress:
        """Resolve `host` and return the address to connect to; every address it resolves to must pass.

        Raises:
            NameNotResolved: the name does not resolve.
            AddressNotAllowed: it is, or resolves to, an address that is not allowed.
        """
        addresses = resolve(host, port)
        if not addresses:
            raise NameNotResolved(f"{host} does not resolve")
        refused = [str(address) for address in addresses if not self.allows(address)]
        if refused:
            where = host if refused == [host] else f"{host} (resolves to {', '.join(refused)})"
            raise AddressNotAllowed(
                f"{where} is not a public address (loopback, private, link-local, CGNAT, multicast and the "
                "like are refused; [webhooks] allowed_networks lets chosen networks through)"
            )
        return addresses[0]


def default_port(url: httpx.URL) -> int:
    """The port a connection to `url` goes to."""
    return url.port or (443 if url.scheme == "https" else 80)


class PinnedTransport(httpx.BaseTransport):
    """An httpx transport that connects to the address `policy` checked for each request's host, keeping
    the URL's host in the Host header and as the TLS server name (certificates are verified against it).

    Raises (from `handle_request`):
        AddressNotAllowed, NameNotResolved: before anything is sent.
    """

    def __init__(self, policy: AddressPolicy, *, resolve: Resolver = system_resolver) -> None:
        self.policy = policy
        self.resolve = resolve
        self._transport = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        address = self.policy.check(host, default_port(request.url), self.resolve)
        request.url = request.url.copy_with(host=str(address))
        request.extensions = {**request.extensions, "sni_hostname": host}
        return self._transport.handle_request(request)

    def close(self) -> None:
        self._transport.close()
