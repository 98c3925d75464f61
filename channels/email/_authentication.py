"""Is the sender of a mail who its `From` says? A verdict vouched for by the receiving side, never the sender.

A mail's sender is verified when either
- the receiving mail server says so: the topmost `Authentication-Results` header (RFC 8601, parsed with
  `authres`) whose authserv-id is one we trust reports `dmarc=pass` for the From domain, or `dkim=pass` with a
  signing domain aligned to it; the server must remove headers bearing its own id from incoming mail
  (RFC 8601 section 5: Postfix with OpenDKIM/OpenDMARC, rspamd, Gmail and Microsoft 365 do), so a sender can't
  write that header themselves; or
- we check the DKIM signature ourselves (`dkimpy`, public key from DNS), again with the signing domain aligned
  to the From domain and the whole body signed (no `l=`).
Anything else (no header from a trusted server, a fail, a signature by another domain, a forged header) is
unverified: the mail is still read and answered, but the sender is not believed to own the address.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage

import authres
import dkim

__all__ = ["DnsTxtLookup", "SenderAuthenticator", "SenderVerdict", "aligned"]

log = logging.getLogger("socialbot.channels.email")

#: Looks up the TXT record of a DNS name ("sel._domainkey.example.com.") and returns its text, or None.
DnsTxtLookup = Callable[[str], str | None]
#: A mail with more DKIM signatures than this is not checked past them (each costs a DNS lookup).
MAX_SIGNATURES_CHECKED = 5


@dataclass(frozen=True, slots=True)
class SenderVerdict:
    """Whether a mail's `From` address is vouched for, and why.

    Args:
        verified: True only when a trusted check passed for the From domain.
        method: what vouched (`dmarc` or `dkim` from a trusted server's header, `dkim-checked` by us), or
            None.
        detail: one line for logs and staff ("dkim=pass d=example.com by mx.brand.example").
    """

    verified: bool
    method: str | None
    detail: str

    def as_dict(self) -> dict[str, object]:
        """The verdict as JSON-ready data (kept with the inbound message)."""
        return {"verified": self.verified, "method": self.method, "detail": self.detail}


def aligned(signing_domain: str, from_domain: str) -> bool:
    """Whether a DKIM signing domain is aligned with the From domain (DMARC's relaxed alignment, without a
    public-suffix list): the same domain, or one a parent of the other. A parent's signer controls the
    child's DNS; siblings (`a.example.com` for `b.example.com`) are not accepted."""
    signer, sender = signing_domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    if "." not in signer or "." not in sender:
        return False
    return signer == sender or sender.endswith("." + signer) or signer.endswith("." + sender)


def _unverified(detail: str) -> SenderVerdict:
    return SenderVerdict(False, None, detail)


class SenderAuthenticator:
    """Decides `SenderVerdict`s for one mailbox.

    Args:
        trusted_authserv_ids: the authserv-ids (the first word of `Authentication-Results`) of the receiving
            servers we trust, e.g. `mx.google.com` or the brand's own MX host name. Empty: none is trusted.
        verify_dkim: also check DKIM signatures ourselves when no trusted header vouches.
        dns_txt: the TXT lookup for DKIM keys; None uses dkimpy's own resolver (dnspython). Tests pass one
            that answers from memory, so they never reach the network.
    """

    def __init__(
        self,
        *,
        trusted_authserv_ids: Sequence[str] = (),
        verify_dkim: bool = False,
        dns_txt: DnsTxtLookup | None = None,
    ) -> None:
        self.trusted = {server.strip().lower() for server in trusted_authserv_ids if server.strip()}
        self.verify_dkim = verify_dkim
        self.dns_txt = dns_txt

    def check(self, raw: bytes, message: EmailMessage, from_address: str | None) -> SenderVerdict:
        """The verdict on `from_address` as the sender of `raw` (`message` is `raw` parsed).

        Never raises: a header or signature that can't be read leaves the sender unverified.
        """
        if not from_address:
            return _unverified("no single From address")
        domain = from_address.rpartition("@")[2].lower()
        verdict = self._by_trusted_header(message, domain)
        if verdict.verified or not self.verify_dkim:
            return verdict
        checked = self._by_own_dkim_check(raw, domain)
        return checked if checked.verified else _unverified(f"{verdict.detail}; {checked.detail}")

    def _by_trusted_header(self, message: EmailMessage, domain: str) -> SenderVerdict:
        if not self.trusted:
            return _unverified("no trusted authserv-id configured")
        for value in message.get_all("Authentication-Results") or []:
            try:
                header = authres.AuthenticationResultsHeader.parse_value(str(value))
            except authres.AuthResError:
                continue
            server = str(header.authserv_id).lower()
            if server not in self.trusted:
                continue
            # The topmost header from a trusted server is its verdict; anything below it came with the mail.
            return self._read_results(header.results, domain, server)
        return _unverified("no Authentication-Results from a trusted server")

    @staticmethod
    def _read_results(results: list, domain: str, server: str) -> SenderVerdict:
        seen = []
        for result in results:
            method, outcome = str(result.method).lower(), str(result.result).lower()
            properties = {(p.type.lower(), p.name.lower()): str(p.value) for p in result.properties}
            if method == "dmarc":
                header_from = properties.get(("header", "from"), "").lower()
                seen.append(f"dmarc={outcome} header.from={header_from}")
                if outcome == "pass" and header_from == domain:
                    return SenderVerdict(True, "dmarc", f"dmarc=pass header.from={domain} by {server}")
            elif method == "dkim":
                signer = (
                    properties.get(("header", "d")) or properties.get(("header", "i"), "").rpartition("@")[2]
                )
                seen.append(f"dkim={outcome} d={signer}")
                if outcome == "pass" and aligned(signer, domain):
                    return SenderVerdict(True, "dkim", f"dkim=pass d={signer} by {server}")
        return _unverified(f"{server}: {', '.join(seen) or 'no dkim or dmarc result'} for {domain}")

    def _dnsfunc(self) -> Callable[..., bytes | None] | None:
        if self.dns_txt is None:
            return None
        lookup = self.dns_txt

        def answer(name: bytes, timeout: float = 5) -> bytes | None:
            text = lookup(name.decode("ascii", errors="replace"))
            return text.encode() if text is not None else None

        return answer

    def _by_own_dkim_check(self, raw: bytes, domain: str) -> SenderVerdict:
        dnsfunc = self._dnsfunc()
        signatures = 0
        failures = []
        for index in range(MAX_SIGNATURES_CHECKED):
            verifier = dkim.DKIM(raw, logger=log)
            try:
                passed = (
                    verifier.verify(idx=index, dnsfunc=dnsfunc) if dnsfunc else verifier.verify(idx=index)
                )
            except (
                Exception
            ) as error:  # hostile input: whatever dkimpy can't read leaves the sender unverified
                failures.append(f"signature {index + 1}: {str(error)[:80] or type(error).__name__}")
                signatures += 1
                continue
            fields = verifier.signature_fields or {}
            if not fields and not passed:
                break  # no signature at this index: all were checked
            signatures += 1
            signer = (verifier.domain or b"").decode("ascii", errors="replace")
            if not passed:
                failures.append(f"d={signer} failed")
            elif b"l" in fields:
                failures.append(f"d={signer} signs only part of the body (l=)")
            elif not aligned(signer, domain):
                failures.append(f"d={signer} is not the From domain")
            else:
                return SenderVerdict(True, "dkim-checked", f"DKIM signature of {signer} checked")
        if not signatures:
            return _unverified("no DKIM signature")
        return _unverified("DKIM: " + "; ".join(failures))
