"""Rules for the harm categories: weapons, drugs, self-harm, sexual content with minors.

The lists are deliberately short and each rule needs *two* signals, so that a keyword on
its own never fires: "how do I kill a python process", "drug interactions of ibuprofen",
"a bath bomb recipe", "sex education for children" all pass. Concretely:

- weapons / drugs: an instruction framing ("how to", "steps to", "teach me to"...), a
  making verb, then a specific weapon or illegal drug within a few words;
- self-harm: a first-person method or intent phrase ("kill myself", "end my life"...)
  with a request or intent framing; plain mentions ("suicide prevention") pass;
- sexual content with minors: a sexual term and a term for a minor within a few words,
  either order, with the clinical and protective phrases excluded ("sexual abuse
  prevention", "sex education").

A model-based classifier (see ``classifier.Classifier``) is the way to catch what such
rules cannot; these are the precise, explainable baseline. Every pattern is bounded and
line-local (``[ \\t]`` instead of ``\\s``), as the stream's contract requires.
"""

from __future__ import annotations

import re

from chorusline.moderation.categories import Category
from chorusline.moderation.classifier import RegexClassifier, RegexRule

_SP = r"[ \t]{1,3}"
_WORDS = r"(?:[\w'-]{1,20}[ \t]{1,3}){0,%d}?"  # up to N filler words, lazily

_FRAMING = (
    r"\b(?:how"
    + _SP
    + r"(?:do|can|would|should|could|might)"
    + _SP
    + r"(?:i|you|we|one|someone|people)|how"
    + _SP
    + r"to|steps?"
    + _SP
    + r"(?:to|for)"
    + r"|instructions?"
    + _SP
    + r"(?:to|for|on)|guide"
    + _SP
    + r"(?:to|for|on)"
    + r"|tutorial"
    + _SP
    + r"(?:on|for)|teach"
    + _SP
    + r"me"
    + _SP
    + r"(?:how"
    + _SP
    + r")?to|tell"
    + _SP
    + r"me"
    + _SP
    + r"how"
    + _SP
    + r"to|explain"
    + _SP
    + r"how"
    + _SP
    + r"to|recipe"
    + _SP
    + r"for|ways?"
    + _SP
    + r"to|help"
    + _SP
    + r"me)"
    + _SP
)
_MAKE = (
    r"(?:mak(?:e|ing)|build(?:ing)?|assembl(?:e|ing)|construct(?:ing)?|manufactur(?:e|ing)"
    r"|produc(?:e|ing)|creat(?:e|ing)|synthesi[sz](?:e|ing)|cook(?:ing)?|brew(?:ing)?"
    r"|3d[ -]?print(?:ing)?|convert(?:ing)?|extract(?:ing)?|refin(?:e|ing))" + _SP
)
_WEAPON = (
    r"(?:pipe" + _SP + r"bombs?|dirty" + _SP + r"bombs?|(?<!bath )(?<!seed )(?<!cherry )"
    r"(?<!f-)(?<!photo)bombs?|explosives?|ieds?|molotov(?:" + _SP + r"cocktails?)?|napalm"
    r"|thermite|detonators?|grenades?|nerve" + _SP + r"agents?|sarin|vx" + _SP + r"gas"
    r"|ricin|anthrax|bio-?weapons?|chemical" + _SP + r"weapons?|ghost" + _SP + r"guns?"
    r"|machine" + _SP + r"guns?|full[ -]auto|untraceable" + _SP + r"(?:guns?|firearms?))\b"
    r"(?!-|" + _SP + r"(?:shelters?|emojis?|icons?|disposal|squads?|threats?|detectors?"
    r"|proof|cyclones?|calorimeters?|pops?)\b)"
)
_DRUG = (
    r"(?:crystal"
    + _SP
    + r"meth|meth|methamphetamine|fentanyl|heroin|crack"
    + _SP
    + r"cocaine|cocaine|lsd|mdma|ecstasy|ghb|dmt|pcp|ketamine|carfentanil)\b(?!-)"
)

_HARM_SELF = (
    r"(?:kill"
    + _SP
    + r"myself|end"
    + _SP
    + r"my"
    + _SP
    + r"(?:own"
    + _SP
    + r")?life|take"
    + _SP
    + r"my"
    + _SP
    + r"own"
    + _SP
    + r"life|commit"
    + _SP
    + r"suicide|hurt"
    + _SP
    + r"myself|harm"
    + _SP
    + r"myself|cut"
    + _SP
    + r"myself|end"
    + _SP
    + r"it"
    + _SP
    + r"all)\b"
)
_SELF_INTENT = (
    r"\bi(?:'m|" + _SP + r"am)?[ \t]{0,3}(?:really" + _SP + r")?(?:want|wanna|need|plan"
    r"|intend|going|gonna|about|(?:(?:have|'ve)" + _SP + r")?decided|will|'ll|should)"
    r"(?:" + _SP + r"to)?" + _SP
)
_SELF_METHOD = (
    r"\b(?:how"
    + _SP
    + r"(?:do|can|should)"
    + _SP
    + r"i|how"
    + _SP
    + r"to|best"
    + _SP
    + r"way"
    + _SP
    + r"to|easiest"
    + _SP
    + r"way"
    + _SP
    + r"to|painless"
    + _SP
    + r"way"
    + _SP
    + r"to|quickest"
    + _SP
    + r"way"
    + _SP
    + r"to|ways?"
    + _SP
    + r"to|help"
    + _SP
    + r"me)"
    + _SP
)
_OVERDOSE = (
    r"\bhow"
    + _SP
    + r"many"
    + _SP
    + _WORDS % 3
    + r"(?:pills|tablets)"
    + _SP
    + _WORDS % 4
    + r"(?:to"
    + _SP
    + r"(?:die|overdose|kill"
    + _SP
    + r"myself))\b"
)

_SEXUAL = (
    r"(?:sexually" + _SP + r"explicit|sexual(?!" + _SP + r"(?:abuse|assault|education|health"
    r"|development|harassment|exploitation|predators?|offen[cs]es?|offenders?|orientation"
    r"|consent|violence))|sexy|erotic|erotica|nsfw|lewd|porn|porno|pornographic"
    r"|nudes?|naked(?!" + _SP + r"(?:mole|eye))|topless|sex" + _SP + r"with)\b"
)
_NUMBER_WORDS = (
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen"
    r"|fourteen|fifteen|sixteen|seventeen)"
)
_MINOR = (
    r"\b(?:child(?:ren)?(?!'s)|kids?(?!')|minors?(?!" + _SP + r"(?:scene|detail|edit|change"
    r"|key|chord|issue|league|spoiler|role|character))|underage|under-age|pre-?teens?"
    r"|toddlers?|little"
    + _SP
    + r"(?:girls?|boys?)|(?:[1-9]|1[0-7]|"
    + _NUMBER_WORDS
    + r")[ -](?:years?|yrs?)[ -]olds?|loli|shota|jailbait)\b"
)


def _rule(category: Category, detail: str, pattern: str) -> RegexRule:
    return RegexRule(category, detail, re.compile(pattern, re.IGNORECASE))


HARM_RULES: tuple[RegexRule, ...] = (
    _rule(
        Category.WEAPONS,
        "weapons.instructions",
        _FRAMING + _WORDS % 2 + _MAKE + _WORDS % 3 + _WEAPON,
    ),
    _rule(Category.DRUGS, "drugs.instructions", _FRAMING + _WORDS % 2 + _MAKE + _WORDS % 3 + _DRUG),
    _rule(Category.SELF_HARM, "self_harm.intent", _SELF_INTENT + _HARM_SELF),
    _rule(Category.SELF_HARM, "self_harm.method", _SELF_METHOD + _HARM_SELF),
    _rule(Category.SELF_HARM, "self_harm.overdose", _OVERDOSE),
    _rule(
        Category.SEXUAL_MINORS,
        "sexual_minors.sexual_then_minor",
        r"\b" + _SEXUAL + _SP + _WORDS % 4 + _MINOR,
    ),
    _rule(
        Category.SEXUAL_MINORS,
        "sexual_minors.minor_then_sexual",
        _MINOR + _SP + _WORDS % 4 + r"\b" + _SEXUAL,
    ),
)


class RuleClassifier(RegexClassifier):
    """The harm rules above as a classifier."""

    def __init__(self) -> None:
        super().__init__(HARM_RULES)
