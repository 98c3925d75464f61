"""Reading mail: replies from the usual clients come out as the customer's own words (measured on the corpus
in tests/data/email_replies), charsets and HTML-only mails are read right, attachments are listed and not
kept, machines' mails are recognised, and a delivery failure names the address that failed."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from channels.email import MalformedMail, parse_bounce, parse_mail, strip_reply
from tests.email_corpus import CORPUS, score_corpus

# Measured 33/49 exact and 48/49 clean and complete (python -m tests.email_corpus); floors a little below.
EXACT_FLOOR = 0.62
CLEAN_AND_COMPLETE_FLOOR = 0.94


def test_replies_from_four_clients_in_three_languages_are_stripped_to_the_customers_words():
    results = score_corpus()
    assert len(results) >= 30
    clients = {result.name.split("-")[1] for result in results}
    languages = {result.name.split("-")[2] for result in results}
    assert clients == {"gmail", "outlook", "apple", "thunderbird"} and languages == {"en", "fr", "de"}
    exact = sum(result.exact for result in results) / len(results)
    usable = sum(result.clean_and_complete for result in results) / len(results)
    assert exact >= EXACT_FLOOR, [r.name for r in results if not r.exact]
    assert usable >= CLEAN_AND_COMPLETE_FLOOR, [r.name for r in results if not r.clean_and_complete]


def test_a_gmail_reply_keeps_headers_attachments_and_the_reply_alone():
    mail = parse_mail((CORPUS / "02-gmail-en-both.eml").read_bytes())
    assert mail.from_address == "jane.doe@customer.example" and mail.from_name == "Jane Doe"
    assert mail.subject == "Re: Your order 4821" and mail.topic == "Your order 4821"
    assert mail.in_reply_to == mail.references and mail.in_reply_to[0].endswith("@fernhill.example>")
    assert mail.message_id.endswith("@mail.gmail.com>")
    assert [(a.filename, a.content_type, a.size) for a in mail.attachments] == [
        ("IMG_2041.jpg", "image/jpeg", 48211)
    ]
    assert "Northwind" in mail.text and "Northwind" not in mail.reply  # the signature is gone
    assert not mail.automatic


def _mail(body: bytes, content_type: str, **headers: str) -> bytes:
    head = {"From": "Zoë <zoe@customer.example>", "To": "help@fernhill.example", "Subject": "Hi", **headers}
    lines = [f"{name.replace('_', '-')}: {value}" for name, value in head.items()]
    return ("\r\n".join([*lines, f"Content-Type: {content_type}", "", ""])).encode() + body


def test_legacy_charsets_and_encoded_headers_are_decoded():
    raw = _mail(
        "Grüße aus Köln – the zip is broken".encode("cp1252"),
        'text/plain; charset="windows-1252"',
        Subject="=?iso-8859-1?q?R=E9clamation?=",
        From="=?utf-8?b?SsOpcsO0bWU=?= <Jerome@Example.FR>",
    )
    mail = parse_mail(raw)
    assert mail.reply == "Grüße aus Köln – the zip is broken"
    assert mail.subject == "Réclamation"
    assert (mail.from_name, mail.from_address) == ("Jérôme", "jerome@example.fr")


def test_an_unknown_charset_is_read_as_utf8_instead_of_failing():
    mail = parse_mail(_mail("Où est ma commande ?".encode(), "text/plain; charset=x-made-up"))
    assert mail.reply == "Où est ma commande ?"


def test_an_html_only_mail_becomes_readable_text_without_styles_or_scripts():
    html = (
        b"<html><head><style>p{color:red}</style><script>alert(1)</script></head><body>"
        b"<p>Hello,</p><p>my <b>Trailhead 30</b> arrived&nbsp;torn.</p><ul><li>order 4821</li>"
        b"<li>size M</li></ul></body></html>"
    )
    mail = parse_mail(_mail(html, "text/html; charset=utf-8"))
    assert "color:red" not in mail.text and "alert" not in mail.text
    assert "my Trailhead 30 arrived torn." in mail.reply and "* order 4821" in mail.reply


def test_format_flowed_paragraphs_are_joined_and_hyphen_lists_survive():
    body = (
        b"The zip broke after two weeks of light use, and I would like a \r\nreplacement please.\r\n"
        b"\r\n- size M\r\n- colour green\r\n"
    )
    mail = parse_mail(_mail(body, "text/plain; charset=utf-8; format=flowed"))
    assert mail.reply == (
        "The zip broke after two weeks of light use, and I would like a replacement please.\n\n"
        "- size M\n- colour green"
    )


def test_format_flowed_with_delsp_drops_the_space_the_sender_added_at_each_soft_break():
    body = "Ich möchte die Jacke umtau \r\nschen, Größe L  \r\nbitte.\r\n".encode()
    mail = parse_mail(_mail(body, "text/plain; charset=utf-8; format=flowed; delsp=yes"))
    assert mail.reply == "Ich möchte die Jacke umtauschen, Größe L bitte."


def test_inline_images_and_forwarded_mails_are_listed_as_attachments():
    inner = EmailMessage()
    inner["From"], inner["Subject"] = "shop@elsewhere.example", "Your receipt"
    inner.set_content("Receipt 123")
    outer = EmailMessage()
    outer["From"], outer["To"], outer["Subject"] = "zoe@customer.example", "help@fernhill.example", "Fwd"
    outer.set_content("See the receipt and the photo.")
    outer.add_alternative("<p>See the receipt and the photo.</p>", subtype="html")
    outer.get_body(("html",)).add_related(b"\x89PNG....", "image", "png", cid="<photo>", filename="photo.png")
    outer.add_attachment(inner, filename="receipt.eml")
    mail = parse_mail(outer.as_bytes())
    assert mail.reply == "See the receipt and the photo."
    found = {(a.filename, a.content_type) for a in mail.attachments}
    assert found == {("photo.png", "image/png"), ("receipt.eml", "message/rfc822")}
    assert all(a.size > 0 for a in mail.attachments)


@pytest.mark.parametrize(
    "header",
    [
        "Auto-Submitted: auto-replied",
        "Precedence: bulk",
        "X-Autoreply: yes",
        "List-Id: <news.shop.example>",
        "List-Unsubscribe: <https://shop.example/u>",
        "X-Auto-Response-Suppress: All",
    ],
)
def test_mails_written_by_machines_are_recognised(header):
    name, value = header.split(": ")
    assert parse_mail(_mail(b"I am out of office.", "text/plain", **{name: value})).automatic
    assert not parse_mail(_mail(b"Where is my order?", "text/plain", Auto_Submitted="no")).automatic


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "no header"),
        (b"just some words\r\n\r\nand more", "no header"),
        (b"Subject: hi\r\n\r\nbody", "no valid From"),
        (b"From: not an address\r\n\r\nbody", "no valid From"),
    ],
)
def test_bytes_that_are_not_a_mail_are_refused_with_the_reason(raw, why):
    with pytest.raises(MalformedMail, match=why):
        parse_mail(raw)


def test_a_reply_that_is_only_a_quote_is_kept_whole_rather_than_lost():
    assert strip_reply("> Hello\n> How can we help?") == "> Hello\n> How can we help?"


DSN = b"""\
From: Mail Delivery System <MAILER-DAEMON@mx.fernhill.example>
To: care@fernhill.example
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.fernhill.example

Final-Recipient: rfc822; Gone@customer.example
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <gone@customer.example>: Recipient address
    rejected: User unknown

Final-Recipient: rfc822; slow@customer.example
Action: delayed
Status: 4.4.1

--B
Content-Type: text/rfc822-headers

From: Fernhill Outdoor <care@fernhill.example>
To: gone@customer.example
Message-ID: <abc.def.ghi@fernhill.example>

--B--
""".replace(b"\n", b"\r\n")


def test_a_delivery_failure_names_the_failed_address_and_the_mail_it_was():
    mail = parse_mail(DSN)
    bounce = parse_bounce(mail.message)
    assert bounce is not None and mail.automatic
    assert bounce.recipients == ("gone@customer.example",)  # the delayed one is not a failure
    assert bounce.status == "5.1.1" and "User unknown" in bounce.diagnostic
    assert bounce.original_message_id == "<abc.def.ghi@fernhill.example>"


def test_a_report_of_delays_only_or_an_ordinary_mail_is_no_bounce():
    delayed = DSN.replace(b"Action: failed", b"Action: delayed")
    assert parse_bounce(parse_mail(delayed).message) is None
    assert parse_bounce(parse_mail(_mail(b"hello", "text/plain")).message) is None
