"""Trusting mail: a sender is verified only when a server we trust vouches for the From domain (or its DKIM
signature checks out against a key we generate here, looked up through an injected DNS that never reaches
the network), and a thread named in `In-Reply-To` is joined only when our own HMAC on it verifies."""

from __future__ import annotations

import base64

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.email import SenderAuthenticator, ThreadSigner, aligned, parse_mail

SECRET = "a-long-test-secret-key-for-thread-ids-0123456789"
JANE = "jane@customer.example"


def mail(*headers: str, sender: str = f"Jane <{JANE}>", body: str = "Please delete my data.") -> bytes:
    lines = [
        *headers,
        f"From: {sender}",
        "To: help@fernhill.example",
        "Subject: my data",
        "Message-ID: <m1@customer.example>",
        "",
        body,
        "",
    ]
    return "\r\n".join(lines).encode()


def verdict(raw: bytes, authenticator: SenderAuthenticator):
    parsed = parse_mail(raw)
    return authenticator.check(raw, parsed.message, parsed.from_address)


TRUSTED = SenderAuthenticator(trusted_authserv_ids=["mx.fernhill.example"])


@pytest.mark.parametrize(
    ("results", "method"),
    [
        ("mx.fernhill.example; dmarc=pass (p=reject) header.from=customer.example", "dmarc"),
        (
            "mx.fernhill.example; spf=pass smtp.mailfrom=customer.example;"
            " dkim=pass header.d=customer.example",
            "dkim",
        ),
        ("MX.Fernhill.Example; dkim=pass header.i=@customer.example header.s=s1", "dkim"),
        ("mx.fernhill.example; dkim=pass header.d=mail.customer.example", "dkim"),  # a subdomain signs
    ],
)
def test_a_trusted_servers_pass_for_the_from_domain_verifies_the_sender(results, method):
    found = verdict(mail(f"Authentication-Results: {results}"), TRUSTED)
    assert found.verified and found.method == method


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ([], "no Authentication-Results from a trusted server"),
        (["Authentication-Results: mx.attacker.example; dmarc=pass header.from=customer.example"], "trusted"),
        (
            ["Authentication-Results: mx.fernhill.example; dmarc=fail header.from=customer.example"],
            "dmarc=fail",
        ),
        (["Authentication-Results: mx.fernhill.example; dkim=pass header.d=attacker.example"], "d=attacker"),
        (
            ["Authentication-Results: mx.fernhill.example; dkim=pass header.d=other.customer.example.net"],
            "d=",
        ),
        (
            ["Authentication-Results: mx.fernhill.example; dmarc=pass header.from=attacker.example"],
            "dmarc=pass",
        ),
        (["Authentication-Results: mx.fernhill.example; spf=pass smtp.mailfrom=customer.example"], "no dkim"),
        (["Authentication-Results: mx.fernhill.example; ;;garbage = ="], "no Authentication-Results"),
        # The receiving server's verdict is the topmost; a pass the sender wrote below it counts for nothing.
        (
            [
                "Authentication-Results: mx.fernhill.example; dkim=none;"
                " dmarc=none header.from=customer.example",
                "Authentication-Results: mx.fernhill.example; dmarc=pass header.from=customer.example",
            ],
            "dmarc=none",
        ),
    ],
)
def test_anything_else_leaves_the_sender_unverified(headers, why):
    found = verdict(mail(*headers), TRUSTED)
    assert not found.verified and found.method is None
    assert why in found.detail


def test_without_a_trusted_server_configured_no_header_is_believed():
    raw = mail("Authentication-Results: mx.fernhill.example; dmarc=pass header.from=customer.example")
    assert not verdict(raw, SenderAuthenticator()).verified


def test_a_mail_with_two_senders_is_never_verified():
    raw = mail(
        "Authentication-Results: mx.fernhill.example; dmarc=pass header.from=customer.example",
        sender=f"{JANE}, mallory@attacker.example",
    )
    assert not verdict(raw, TRUSTED).verified


def test_alignment_accepts_the_domain_and_its_parents_or_children_only():
    assert aligned("customer.example", "customer.example")
    assert aligned("customer.example", "eu.customer.example")
    assert aligned("mail.customer.example", "customer.example")
    assert not aligned("other.customer.example", "eu.customer.example")
    assert not aligned("example", "customer.example")
    assert not aligned("customer.example.attacker.example", "customer.example")


@pytest.fixture(scope="module")
def signing_key() -> tuple[bytes, dict[str, str]]:
    """A fresh RSA key for `customer.example` and the DNS TXT record that publishes it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    dns = {"s1._domainkey.customer.example.": "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode()}
    return private, dns


def signed(raw: bytes, private: bytes, domain: str = "customer.example", **options) -> bytes:
    headers = [b"from", b"to", b"subject", b"message-id"]
    return dkim.sign(raw, b"s1", domain.encode(), private, include_headers=headers, **options) + raw


def test_a_dkim_signature_we_check_ourselves_verifies_the_sender(signing_key):
    private, dns = signing_key
    lookups: list[str] = []

    def dns_txt(name: str) -> str | None:
        lookups.append(name)
        return dns.get(name)

    checker = SenderAuthenticator(verify_dkim=True, dns_txt=dns_txt)
    found = verdict(signed(mail(), private), checker)
    assert found.verified and found.method == "dkim-checked"
    assert lookups == ["s1._domainkey.customer.example."]


def test_a_tampered_body_a_foreign_signer_or_a_partial_body_signature_does_not(signing_key):
    private, dns = signing_key
    checker = SenderAuthenticator(verify_dkim=True, dns_txt=dns.get)
    good = signed(mail(), private)
    tampered = good.replace(b"Please delete my data.", b"Please delete all data.")
    assert not verdict(tampered, checker).verified
    as_other = signed(mail(sender="Boss <boss@bank.example>"), private)  # signed by customer.example
    assert "not the From domain" in verdict(as_other, checker).detail
    partial = signed(mail(), private, length=True)
    assert "l=" in verdict(partial, checker).detail
    assert not verdict(mail(), checker).verified  # no signature at all
    assert not verdict(good, SenderAuthenticator(verify_dkim=True, dns_txt=lambda name: None)).verified


THREAD = "jane@customer.example"


def test_our_message_ids_name_their_thread_and_are_stable_per_outbox_row():
    signer = ThreadSigner(SECRET, "fernhill.example")
    first = signer.message_id("followup:42", THREAD)
    assert first == signer.message_id("followup:42", THREAD) != signer.message_id("followup:43", THREAD)
    assert first.startswith("<") and first.endswith("@fernhill.example>")
    assert signer.thread_of(first) == THREAD
    assert signer.thread_of_reply(first) == THREAD
    assert signer.thread_of_reply(None, ["<other@gmail.example>", first]) == THREAD


def test_a_forged_or_foreign_id_starts_a_new_thread():
    signer = ThreadSigner(SECRET, "fernhill.example")
    genuine = signer.message_id("followup:42", THREAD)
    digest, thread, tag = genuine.strip("<>").split("@")[0].split(".")
    victim = base64.b32encode(b"victim@customer.example").decode().rstrip("=").lower()
    forged_thread = f"<{digest}.{victim}.{tag}@fernhill.example>"  # the tag of another thread
    made_up_tag = f"<{digest}.{thread}.{'a' * 16}@fernhill.example>"
    other_key = ThreadSigner("another-secret-key-of-another-install-0000", "fernhill.example")
    for candidate in (
        forged_thread,
        made_up_tag,
        other_key.message_id("followup:42", THREAD),
        genuine.replace("fernhill.example", "attacker.example"),
        "<CAK7x@mail.gmail.com>",
        "not an id",
        "",
    ):
        assert signer.thread_of(candidate) is None, candidate
        assert signer.thread_of_reply(candidate, [candidate]) is None


def test_a_thread_signer_needs_a_secret():
    with pytest.raises(ValueError, match="secret"):
        ThreadSigner("", "fernhill.example")
