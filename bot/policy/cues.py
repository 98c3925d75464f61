"""What a message's own words say about what it asks for, where the intent heads are unsure or read it one way
while its form says another: is it asked as a question, put as a suggestion, thanks or praise, a closing
("never mind, sorted it"), a problem still open, about the customer's own matter. Plain English patterns that
hold whatever the encoder: the policy (routing.py) reads them beside the heads, never instead of a confident
head except where a rule says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Cues", "read_cues"]

_I = re.IGNORECASE

# A sentence (or clause) opening with a question word, or with an auxiliary before its subject ("do you ...",
# "is the ...", "can i ..."), after any @handles or a greeting. "?" anywhere counts too.
_QUESTION_OPENING = re.compile(
    r"(?:^|[.!,;:\n]\s*)(?:(?:@\w+|hi|hiya|hello|hey|morning|evening|quick\s+question|sorry|all|there|guys|team"
    r"|ok|okay|so|and|but|wtf|wth|ffs|seriously)"
    r"[\s,!:-]*)*"
    r"(?:(?:how|hw|what|whats|what's|where|wheres|where's|when|whens|when's|why|who|which|whose)\b"
    r"|(?:can|could|do|does|did|is|are|was|were|will|would|should|shall|may|have|has|any)\s+"
    r"(?:i|you|u|we|it|there|the|my|this|that|these|those|your|ur|a|an|anyone|someone|somebody|they|he|she"
    r"|idea|chance|way|news)\b)",
    _I,
)
_QUESTION_PHRASE = re.compile(
    r"\b(?:i\s+(?:was\s+)?wondering|is\s+it\s+possible|i(?:'d|\s+would)\s+like\s+to\s+know|i\s+want\s+to\s+know"
    r"|(?:can|could)\s+(?:you\s+)?(?:tell|let)\s+me|please\s+(?:advise|let\s+me\s+know)"
    r"|(?:please|pls|plz)\s+(?:can|could|would)\s+(?:you|someone|somebody))\b",
    _I,
)

# A request the help pages may meet, said without a question: "i need to change my address".
_REQUEST = re.compile(
    r"\b(?:i\s+(?:need|want|have)\s+to|i(?:'d|\s+would)\s+like\s+to|how\s+to|help\s+(?:me\s+)?with"
    r"|(?:i'm|im|i\s+am)\s+(?:looking\s+for|trying\s+to))\b",
    _I,
)

# Put as a suggestion for the brand: "how about ...", "it would be great if ...", "you should ...".
_SUGGESTION = re.compile(
    r"\b(?:how|what)\s+about\s+(?:a|an|some|adding|having|doing|offering|making|selling|stocking|putting)\b"
    r"|\b(?:it\s+would|it'd|would|wud|wld|it\s+will|that\s+would|that'd|'d)\s+(?:be|help|make)\b[^.!?]*?\bif\b"
    r"|\b(?:would|wud|wld)\s+be\s+(?:even\s+|so\s+much\s+|much\s+|really\s+)?(?:great|nice|good|gud|amazing"
    r"|brilliant|class|handy|helpful|cool|awesome|lovely|ace|ideal|better)\b"
    r"|\b(?:it'd|it\s+would|that\s+would|that'd)\s+be\s+(?:even\s+|so\s+much\s+|much\s+)?(?:great|nice|good"
    r"|amazing|brilliant|handy|helpful|cool|better)\b"
    r"|\byou\s+(?:should|could|ought\s+to)\s+(?:really\s+|definitely\s+|totally\s+|also\s+)?"
    r"(?:add|make|sell|stock|offer|do|start|have|bring|put|open|run|let|consider|think|try)\b"
    r"|\bwhy\s+(?:not|don't\s+you|dont\s+you|do\s+you\s+not)\s+(?:add|make|sell|stock|offer|do|start|have|bring|"
    r"put|open|run|let)\b"
    r"|\b(?:please|pls|plz)\s+(?:add|stock|make|bring\s+back|bring|start|sell|offer|consider)\b"
    r"|\b(?:could|can)\s+(?:the|your)\s+(?:app|site|website|web\s+site|checkout|basket|product\s+pages?|pages?)"
    r"\s+(?:remember|show|let|have|save|tell|offer|include|add|list|say)\b"
    r"|\b(?:could|can|would|will)\s+you\s+(?:please\s+|pls\s+|ever\s+)?(?:add|introduce|start\s+(?:selling|stocking|doing)"
    r"|bring\s+back|consider|think\s+about)\b(?![^.!?]*\b(?:my|our)\s+(?:order|basket|account|parcel))"
    r"|\bi\s+wish\s+(?:you|your|there)\b|\b(?:suggestion|idea|feature\s+request)\s*[:\-]"
    r"|\bmaybe\s+(?:offer|add|make|do|have|put|start|sell|stock|bring|consider)\b"
    r"|\bany\s+plans\s+(?:to|for|on)\s+(?:do|doing|make|making|sell|selling|stock|stocking|bring|bringing|add"
    r"|adding|offer|offering|launch|launching|start|starting|a|an|some)\b"
    r"|\b(?:i'?d|i\s+would|we'?d|we\s+would|would)\s+(?:definitely\s+|totally\s+|so\s+)?buy\b"
    r"|\byou\s+(?:need|want)\s+(?:to\s+(?:add|make|sell|stock|offer|do|start|bring)|an?\s+|more\s+|some\s+)",
    _I,
)

# Thanks or praise, in words or emoji ("thank you", "you lot are fab", "fitted them perfectly", "🙌").
_PRAISE = re.compile(
    r"\b(?:thank(?:s|\s+you|ing)?|thx|cheers|ta\s+very\s+much|grateful|kudos|shout[\s-]?out|props\s+to"
    r"|well\s+done|fab|fabulous|brilliant|amazing|excellent|superb|perfect(?:ly)?|fantastic|awesome|wonderful"
    r"|outstanding|legends?|spot\s+on|top\s+notch|first\s+class|impressed|impressive|delighted|chuffed"
    r"|love(?:d|s)?|loving|best|great|lovely|recommend(?:ed)?|bang\s+on|comfy|comfiest|comfortable|cosy|toasty"
    r"|faultless|flawless|gorgeous|stunning|beautiful|pleased|happy|made\s+my\s+day|hero(?:es)?|stars?|ace"
    r"|cracking|smashing|top\s+(?:bloke|lass|class|job|service)|worth\s+every\s+penny|bone\s+dry|survived"
    r"|five\s+stars|10\s*/\s*10)(?!\w)"
    r"|[🙌❤💚💙😍🥰👍⭐🌟💯🤩]",
    _I,
)

# Praise said with a negation or a "still", which would otherwise read as a problem: "can't recommend them
# enough", "couldn't be happier", "never had a tent this easy to pitch", "still going strong after 6 years",
# "not one blister". Read as praise, and left out when looking for a problem.
_PRAISE_IDIOM = re.compile(
    r"\b(?:can'?t|cannot|couldn'?t|could\s+not)\s+(?:recommend|rate|praise|thank)\b[^.!?]{0,40}?\benough\b"
    r"|\b(?:can'?t|cannot|couldn'?t|could\s+not)\s+(?:be\s+(?:happier|more\s+pleased)|ask\s+for\s+(?:more|better)"
    r"|fault)\b"
    r"|\bno\s+(?:complaints|regrets)\b|\bnot\s+(?:a|one)\s+(?:single\s+)?(?:blister|drop|leak|problem|issue"
    r"|complaint)\b|\bzero\s+(?:blisters|leaks|problems|issues|complaints)\b"
    r"|\bnever\s+(?:lets?|let\s+(?:me|us))\s+(?:me\s+|us\s+)?down\b|\bnever\s+disappoints?\b"
    r"|\bnever\s+(?:had|owned|worn|used|slept\s+in|seen|been)\s+(?:a|an|such|anything|one|boots|shoes|kit|gear"
    r"|so|this)\b[^.!?]{0,30}?\b(?:this|so|as|more|better|comfier|warmer|easier|lighter|drier)\b"
    r"|\bwouldn'?t\s+(?:shop|go|buy)\s+anywhere\s+else\b"
    r"|\b(?:won'?t|will\s+not|wouldn'?t)\s+be\s+(?:the|my|our)\s+last\b"
    r"|\bstill\s+(?:going\s+strong|(?:as\s+)?good\s+as\s+new|like\s+new|bone\s+dry|my\s+(?:favourite|fave|go-to))\b",
    _I,
)

# Said with a wink: praise words that mean the opposite ("love that for me 🙃", cheers for the "express"
# delivery). A few quoted lower-case words are a claim the customer doubts; capitalised quotes are names.
_SARCASM = re.compile(
    r"🙃|\blove\s+that\s+for\s+(?:me|us)\b|\b(?:oh|just)\s+(?:great|brilliant|lovely|perfect|fab)\b"
    r"|\bgreat,?\s+(?:another|more)\b|\b(?:thanks|cheers)\s+a\s+(?:lot|bunch)\W*$|\bwell\s+done\s+(?:again\s+)?guys\W*$"
    r"|[\"“](?-i:[a-z][a-z'-]*(?:\s+[a-z][a-z'-]*){0,3})[\"”]",
    _I,
)

# Tells what happened, without asking: "ordered a kids size 2 and got an adult size 2". A report about the
# customer's own order is for a person, not for the article its words sit near.
_REPORT = re.compile(
    r"\b(?:i|we|i've|ive|we've)\s+(?:just\s+)?(?:ordered|bought|got|received|paid|returned|sent|opened|unpacked"
    r"|picked\s+up|collected)\b[^.!?]*\b(?:and|but)\s+(?:got|received|it|they|the|there|you)\b"
    r"|\b(?:ordered|bought)\b[^.!?]*\b(?:and|but)\s+(?:got|received)\b",
    _I,
)

# A problem, or a turn that keeps praise words from being praise ("amazing customer service 👏" after two
# hours on hold): waiting, something gone wrong, a contrast.
_PROBLEM = re.compile(
    r"\b(?:still|again|yet|never|nobody|no\s+one|waiting|waited|wait|queue|on\s+hold|hung\s+up"
    r"|(?:got|was|were|been|then|and|call)\s+cut\s+off|cut\s+(?:me|us)\s+off"
    r"|late|broken|broke|faulty|damaged|missing|missed|lost|wrong|poor|poorly|refund|cancel(?:led)?|useless|waste|wasted|joke"
    r"|rubbish|awful|terrible|worst|disappointed|disappointing|unfortunately|sadly|shame|but|however|except"
    r"|pieces|ruined|soaked|leak(?:s|ed|ing)?|ripped|torn|tore|snapped|fell\s+apart|disgrace(?:ful)?|ridiculous"
    r"|appalling|shocking|pathetic|unacceptable|rude|ignored|charged|overcharged|sick\s+of|fed\s+up"
    r"|thanks\s+for\s+nothing|cheers\s+for\s+that|yeah\s+right|slow|glitchy|unable|outage|error|problems?"
    r"|issues?|kidding|not\s+(?:arriving|letting|loading|working|answering|responding)|cannot|couldn't"
    r"|couldnt|(?:did|does|do|has|have|had|is|are|was|were|will|would|could)\s+not|no\s+(?:help|reply|response|answer)"
    r"|really\s*\?|so\s+long|ages|forever|how\s+much\s+longer"
    r"|apart\s+from|for\s+nothing|not\s+(?:here|arrived|working|received|happy|impressed)|didn't|didnt|doesn't"
    r"|doesnt|won't|wont|can't|cant|haven't|havent|hasn't|hasnt|isn't|isnt|wasn't|wasnt)\b"
    r"|[👏🙄😡😤🤬😠😞😭😢😑☹]|:-?\(|\?!|!\?",
    _I,
)
# Swearing or an exasperated aside: it keeps praise words from being praise, but names no problem by itself
# ("wtf is the cut off for next day delivery" is a question, rudely put).
_EXASPERATED = re.compile(r"\b(?:ffs|wtf|wth|omfg|seriously)\b", _I)

# Asks what to do about a problem, in the customer's own words: the help pages' procedure is the answer
# ("one of the poles was missing, what should i do?", "is that covered?").
_WHAT_TO_DO = re.compile(
    r"\b(?:what\s+(?:should|do|can|shall|must)\s+i\s+do|what\s+do\s+i\s+(?:need\s+to\s+)?do|what\s+now"
    r"|what\s+are\s+my\s+options|what'?s\s+the\s+(?:process|procedure|next\s+step)"
    r"|how\s+do\s+i\s+(?:get|claim|report|return|send|sort|fix|make\s+a\s+claim)"
    r"|(?:is|would|will)\s+(?:that|this|it)\s+(?:be\s+)?covered"
    r"|(?:can|could|should)\s+i\s+(?:get|return|exchange|swap|claim|send)"
    r"|(?:is|would|will)\s+(?:that|this|it)\s+(?:be\s+)?(?:under|covered\s+by)\s+(?:the\s+)?(?:warranty|guarantee))\b",
    _I,
)

# ...unless the problem was put right (thanks for sorting a missing item is praise).
_RESOLVED = re.compile(r"\b(?:sorted|fixed|resolved|replaced|refunded|sorting|fixing)\b", _I)

# A problem the brand already knows of and has not put right: a promise not kept, a wait, something done to
# the customer. A question carrying one is a complaint, not a request for the help pages.
_UNRESOLVED = re.compile(
    r"\b(?:still|again|yet|nobody|no\s+one|(?:second|third|fourth|fifth|\d+(?:st|nd|rd|th))\s+(?:time|day|week|e-?mail|message|call)"
    r"|(?:\d+|a\s+few|few|two|three|four|five|six|several|many)\s+(?:days|weeks|months)\s+(?:ago|now|later|on)"
    r"|(?:sent|sold|charged|gave|told|promised)\s+me|you(?:'ve|\s+have)?\s+(?:sent|sold|charged|lost|cancelled"
    r"|promised))\b",
    _I,
)

# A closing with nothing left to do: "never mind, sorted it myself", "all good now", "no worries".
_CLOSING = re.compile(
    r"^\W*(?:ok(?:ay)?\W+|oh\W+|ah+\W+|right\W+|cool\W+)?(?:never\s*mind|nvm|no\s+worries|all\s+(?:good|sorted|done)"
    r"|sorted(?:\s+it)?(?:\s+now)?|(?:i\s+)?(?:found|figured)\s+it(?:\s+out)?|forget\s+it|ignore\s+(?:me|that)"
    r"|don'?t\s+worry"
    r"|(?:(?:thanks|thank\s+you|thx|cheers|ta)\W+)?(?:that'?s|thats)\s+(?:all|everything)(?:\s+i\s+needed)?\W*$)",
    _I,
)

# Rude words aimed at someone, threats and the marks of spam: without any of these an abusive read of a plain
# question or suggestion is the head's mistake ("where's your nearest shop?" is nobody's abuse).
_RUDE = re.compile(
    r"\b(?:f+u*c+k\w*|f\*+\w*|fk\w*|fuc+in\w*|sh[i!1*]t\w*|crap\w*|bloody|damn\w*|hell|arse\w*|ass|asses"
    r"|bastards?|bitch\w*|bollocks|piss\w*|twats?|wank\w*|dick\w*|cunts?|prick\w*|tossers?|knobs?|bs|wtf|wth"
    r"|tf|ffs|stfu|idiot\w*|moron\w*|muppets?|clowns?|dumb\w*|stupid\w*|thick|useless|pathetic|incompetent"
    r"|imbecile\w*|cretin\w*|scum\w*|losers?|jokers?|numpt\w*|plonkers?|inbred|brain-?dead|retard\w*|die|kill\w*"
    r"|hurt|smash\w*|burn|break\s+(?:his|her|your|their|you|him|them)|legs|punch\w*|batter\w*|kick\w*|slap\w*"
    r"|stab\w*|deck|watch\s+(?:yourself|your\s+back|out)|bus|hope\s+you|shut\s+up|hate|disgusting"
    r"|gtfo|rt|follow|followers?|dm|giveaway|free|crypto|earn|link\s+in\s+bio|click)\b"
    r"|https?://|www\.|\.(?:com|net|io|example|biz|xyz)\b|(?-i:[A-Z]{4,}\s+[A-Z]{4,})|\*{2,}",
    _I,
)

# The customer's own matter: something of theirs or done to them, or an order reference.
_OWN_MATTER = re.compile(
    r"\b(?:me|my|mine|myself|our|ours|us)\b|#\s*\d{3,}|\b[A-Z]{1,4}-?\d{3,}\b"
    r"|\border\s*(?:no\.?|number|#)?\s*\d{3,}",
    _I,
)


@dataclass(frozen=True, slots=True)
class Cues:
    """What the words of one message say (see the module's docstring)."""

    question: bool = False  # asked as a question
    question_mark: bool = False  # a "?": asked outright (", who spent an hour helping" is no question)
    request: bool = False  # asks for something without a question ("i need to change my address")
    suggestion: bool = False  # put as a suggestion for the brand
    praise: bool = False  # thanks or praise with no problem named (or the problem put right)
    problem: bool = False  # names something gone wrong, or sounds upset or sarcastic
    unresolved: bool = False  # a problem already open: a wait, a promise not kept, something done to them
    closing: bool = False  # a closing with nothing left to do
    own_matter: bool = False  # about the customer's own order, item or experience
    what_to_do: bool = False  # asks what to do about a problem ("what should i do?", "is that covered?")
    sarcasm: bool = False  # praise words meant the other way ("love that for me 🙃", the "express" delivery)
    report: bool = False  # tells what happened without asking ("ordered a size 2 and got a 12")
    rude: bool = False  # a rude word, a threat or the marks of spam (an abusive read needs one)


def read_cues(text: str) -> Cues:
    """The cues of `text` (an empty text has none)."""
    text = (text or "").replace("\u2019", "'").replace("\u2018", "'")  # curly apostrophes as typed on phones
    idiom = bool(_PRAISE_IDIOM.search(text))
    praise_words = idiom or bool(_PRAISE.search(text))
    plain = _PRAISE_IDIOM.sub(" ", text)  # what is left to name a problem
    problem = bool(_PROBLEM.search(plain))
    exasperated = bool(_EXASPERATED.search(text))
    sarcasm = bool(_SARCASM.search(text))
    return Cues(
        question="?" in text or bool(_QUESTION_OPENING.search(text) or _QUESTION_PHRASE.search(text)),
        question_mark="?" in text,
        request=bool(_REQUEST.search(text)),
        suggestion=bool(_SUGGESTION.search(text)),
        praise=praise_words
        and not exasperated
        and not sarcasm
        and (not problem or bool(_RESOLVED.search(text))),
        problem=problem,
        unresolved=bool(_UNRESOLVED.search(plain)),
        closing=bool(_CLOSING.search(text)),
        own_matter=bool(_OWN_MATTER.search(text)),
        what_to_do=bool(_WHAT_TO_DO.search(text)),
        sarcasm=sarcasm,
        report=bool(_REPORT.search(text)),
        rude=bool(_RUDE.search(text)),
    )
