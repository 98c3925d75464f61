"""The one home of every text the bot says that is not a knowledge-base article: replies, the e-mail
verification flow, data-rights answers and follow-ups, as Jinja2 templates in the brand's voice.

`[policy] templates` replaces or adds templates; `[policy] templates_by_language` gives a language its own
words for some of them (the others fall back to the default ones). Every template is checked once at
start-up, so a typo or an unknown variable stops the start with one line naming the setting.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, StrictUndefined, Template, TemplateSyntaxError

__all__ = ["DEFAULT_TEMPLATES", "TEMPLATE_VARIABLES", "PolicyError", "Templates"]

#: Every text the bot says that is not a knowledge-base article, in the brand's voice (Jinja2). Each gets
#: `brand`, `support_hours`, `human_reply_estimate`, `article` (or none) and its own `TEMPLATE_VARIABLES`.
DEFAULT_TEMPLATES: dict[str, str] = {
    "complaint": (
        "I'm really sorry about this - it's not the experience we want you to have with {{ brand }}. "
        "I've passed your message to our support team and a person will reply {{ human_reply_estimate }} "
        "({{ support_hours }})."
        "{% if article %} In the meantime, this may help: {{ article.title }}"
        "{% if article.url %} {{ article.url }}{% endif %}{% endif %}"
    ),
    "no_answer": (
        "Good question! I don't have a reliable answer to that, so I've passed it to a colleague at "
        "{{ brand }}. A person will reply {{ human_reply_estimate }} ({{ support_hours }})."
    ),
    # An abusive message that also asks for something (bot/policy/routing.py): it goes to a person; the reply
    # is neutral and never quotes the customer's words (it may be posted in a public thread).
    "abusive_request": (
        "Thanks for getting in touch. I've passed your message to a person on the {{ brand }} team, who'll "
        "reply {{ human_reply_estimate }} ({{ support_hours }})."
    ),
    "wants_human": (
        "Of course - I've asked a person from the {{ brand }} team to take over. "
        "They'll reply {{ human_reply_estimate }} ({{ support_hours }})."
    ),
    "unsure": (
        "Thanks for your message! I want to be sure you get the right answer, so I've passed it to a person "
        "on the {{ brand }} team, who'll reply {{ human_reply_estimate }}."
    ),
    "praise": "Thank you so much - that's lovely to hear! We'll pass it on to the whole {{ brand }} team.",
    "recommendation": (
        "Thanks for the idea! I've recorded it for the {{ brand }} product team - they read every suggestion."
    ),
    "greeting": (
        "Hi! I'm the {{ brand }} assistant. Ask me about orders, delivery, returns, payments or your "
        'account, tell us what you think, or say "talk to a person" any time.'
    ),
    "language_note": "(I can't write in your language yet, so here is my answer in English.)",
    "small_talk": (
        "Hi! I'm the {{ brand }} assistant. Ask me about orders, delivery, returns, payments or your account "
        '- or say "talk to a person" any time.'
    ),
    # The e-mail verification flow (bot/engagement/identity.py)
    "code_sent": (
        "I've sent a 6-digit code to {{ address }}. Please send it here to confirm that address is yours."
    ),
    "code_mail": (
        "Your {{ brand }} confirmation code is {{ code }}. Send it back in the conversation where you gave "
        "us this address; it expires in 15 minutes. If you didn't ask for it, ignore this e-mail."
    ),
    "request_code_mail": (
        "Someone asked {{ brand }} from this address to "
        "{{ 'delete' if kind == 'erasure' else 'see' }} the data stored about you (request {{ id }}). "
        "If it was you, reply with this code: {{ code }}. It expires in 15 minutes. If it wasn't you, "
        "ignore this e-mail: nothing happens."
    ),
    "invalid_address": (
        "That doesn't look like a valid e-mail address ({{ error }}). Could you send it again?"
    ),
    "wrong_code": (
        "That code doesn't match. You have {{ tries }} more {{ 'try' if tries == 1 else 'tries' }}."
    ),
    "too_many_wrong_codes": (
        "That code was wrong too many times. Send your e-mail address again for a new code."
    ),
    "code_expired": "That code has expired. Send your e-mail address again for a new code.",
    "too_many_codes": ("I've sent several codes already; please wait an hour before asking for another one."),
    "email_verified": (
        "Thanks, {{ address }} is confirmed. We'll use it to keep in touch about your requests."
    ),
    "email_conflict": (
        "Thanks, {{ address }} is confirmed, but it belongs to another customer record we can't join "
        "automatically; a colleague will look at it."
    ),
    # Customer satisfaction (bot/engagement/csat.py)
    "csat_thanks": "Thank you for rating us {{ rating }}/5! It helps us get better.",
    # Data rights (bot/pipeline/steps/data_rights.py)
    "data_access": (
        "You can see everything we store about you. I've recorded your request (number {{ id }}); our team "
        "will send you a copy of your data within 30 days."
    ),
    "data_erasure": (
        "I've recorded your request (number {{ id }}) to delete your data; our team will confirm within 30 "
        "days once it is done."
    ),
    "data_unverified": (
        "To protect your data I can't act on this from an account we haven't confirmed is yours. Send us "
        "your e-mail address here to confirm it with a code, or ask from the account you usually use."
    ),
    "data_unverified_email": (
        "To protect your data we first need to be sure this request (number {{ id }}) comes from you: we've "
        "e-mailed a 6-digit code to this address. Reply with it and your request goes ahead."
    ),
    "data_access_elsewhere": (
        "I've recorded your request (number {{ id }}); our team will send your data to your own address "
        "within 30 days."
    ),
    "data_access_done": (
        "Here is what we store about you: your accounts on {{ channels | join(', ') or 'no channel' }}, "
        "{{ messages }} messages in {{ conversations }} conversations, {{ ideas }} ideas and "
        "{{ follow_ups }} follow-ups. Ask our team for the full copy (request {{ id }})."
    ),
    "data_access_public": (
        "I've recorded your request (number {{ id }}); as this is a public thread, our team will send your "
        "data to you privately."
    ),
    "data_erasure_done": "Done: your data has been deleted (request {{ id }}). We won't contact you again.",
    # Follow-ups (bot/engagement/followups.py)
    "resolution_check": (
        "Hi, it's {{ brand }} again. We sorted out the problem you told us about. Did that fix it? "
        "If you have a moment, how would you rate our help from 1 (poor) to 5 (great)? "
        "Just reply with the number."
    ),
    "idea_update": (
        'Thanks again for your idea ("{{ idea }}"). An update from {{ brand }}: it is now {{ status }}.'
    ),
}

#: What each template is given besides the brand's context and `article`, with an example value of each (the
#: templates are checked with these at start-up). A template not named here is given nothing more.
TEMPLATE_VARIABLES: dict[str, dict[str, Any]] = {
    "code_sent": {"address": "anna@example.com"},
    "code_mail": {"code": "123456"},
    "request_code_mail": {"code": "123456", "id": 12, "kind": "erasure"},
    "invalid_address": {"error": "The part after the @-sign is not valid"},
    "wrong_code": {"tries": 2},
    "email_verified": {"address": "anna@example.com"},
    "email_conflict": {"address": "anna@example.com"},
    "csat_thanks": {"rating": 4},
    "data_access": {"id": 12},
    "data_erasure": {"id": 12},
    "data_access_done": {
        "id": 12,
        "channels": ["telegram", "email"],
        "messages": 3,
        "conversations": 1,
        "ideas": 0,
        "follow_ups": 1,
    },
    "data_access_public": {"id": 12},
    "data_unverified_email": {"id": 12},
    "data_access_elsewhere": {"id": 12},
    "data_erasure_done": {"id": 12},
    "idea_update": {"idea": "Sell kids' hiking boots", "status": "planned"},
}


class PolicyError(Exception):
    """A template (or the routing table) is invalid; the message names the setting."""


class Templates:
    """The brand's templates, compiled and checked once.

    Args:
        context: what every template is given (brand, support_hours, human_reply_estimate).
        templates: replacements and additions to `DEFAULT_TEMPLATES`, by name.
        templates_by_language: per ISO 639-1 language, the brand's own words for some templates.

    Raises:
        PolicyError: a template does not compile or uses a variable it is not given.
    """

    def __init__(
        self,
        context: dict[str, str],
        templates: dict[str, str] | None = None,
        templates_by_language: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self._context = context
        environment = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
        self._default = {
            name: _compile(environment, source, f"templates.{name}")
            for name, source in {**DEFAULT_TEMPLATES, **(templates or {})}.items()
        }
        self._by_language: dict[str, dict[str, Template]] = {
            language: {
                name: _compile(environment, source, f"templates_by_language.{language}.{name}")
                for name, source in sources.items()
            }
            for language, sources in (templates_by_language or {}).items()
        }
        for language in [None, *self._by_language]:
            for name in DEFAULT_TEMPLATES:
                try:
                    self.render(name, language=language, **TEMPLATE_VARIABLES.get(name, {}))
                except Exception as error:  # a template referring to a variable it is not given
                    where = f"templates_by_language.{language}" if language else "templates"
                    raise PolicyError(f"setting policy.{where}.{name}: {error}") from None

    @property
    def languages(self) -> set[str]:
        """The languages with their own templates (besides the brand's default)."""
        return set(self._by_language)

    def render(self, name: str, *, language: str | None = None, article: Any = None, **variables: Any) -> str:
        """Render template `name` in `language` when the brand wrote it in it, else in the default words.

        Args:
            article: the knowledge-base article the text mentions, if any.
            variables: the template's own variables (`TEMPLATE_VARIABLES`).

        Raises:
            KeyError: there is no template `name`.
        """
        chosen = self._by_language.get(language, {}).get(name) or self._default[name]
        return chosen.render(**self._context, article=article, **variables).strip()


def _compile(environment: Environment, source: str, setting: str) -> Template:
    try:
        return environment.from_string(source)
    except TemplateSyntaxError as error:
        raise PolicyError(f"setting policy.{setting}: {error.message} (line {error.lineno})") from None
