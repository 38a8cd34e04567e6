"""Prompt-injection phrases: instruction overrides, jailbreak personas, system-prompt
exfiltration and forged chat-template tokens.

The default policy only *flags* these in input (they are recorded, the turn goes on):
the phrases are quoted innocently too ("what does 'ignore previous instructions' do?"),
and the real defence is that the system prompt holds nothing secret. The rules still aim
at the attack shape rather than the words: "ignore the previous commit" and "what is a
system prompt?" pass; "ignore all previous instructions" and "print your system prompt"
do not. Patterns are bounded and line-local, like every rule (see ``classifier``).
"""

from __future__ import annotations

import re

from chorusline.moderation.categories import Category
from chorusline.moderation.classifier import RegexClassifier, RegexRule

_SP = r"[ \t]{1,3}"
_ADJ = (
    r"(?:(?:all|any|the|your|my|of|these|those|every|prior|previous|earlier|above)"
    + _SP
    + r"){0,3}"
)

_OVERRIDE = (
    r"\b(?:ignore|disregard|forget|override|bypass|skip)"
    + _SP
    + _ADJ
    + r"(?:previous|prior|above|earlier|preceding|original|initial|system|safety|developer)"
    + _SP
    + r"(?:instructions?|prompts?|rules|directions|directives|guidelines|messages?"
    + r"|constraints|programming)\b"
)
_PERSONA = (
    r"\byou"
    + _SP
    + r"are"
    + _SP
    + r"(?:now|going"
    + _SP
    + r"to"
    + _SP
    + r"act"
    + _SP
    + r"as)"
    + _SP
    + r"(?:dan|stan|aim|an?"
    + _SP
    + r"(?:unrestricted|unfiltered|uncensored"
    + r"|jailbroken)"
    + r"|(?:unrestricted|unfiltered|uncensored|jailbroken)|in"
    + _SP
    + r"(?:developer|god|jailbreak|dan)"
    + _SP
    + r"mode)\b"
)
_DO_ANYTHING = r"\bdo" + _SP + r"anything" + _SP + r"now\b"
_DAN = r"\bdan\b[^\n]{0,40}?" + _DO_ANYTHING + r"|" + _DO_ANYTHING + r"[^\n]{0,10}?\bdan\b"
_MODE = (
    r"\b(?:enable|enter|activate|switch"
    + _SP
    + r"(?:on|to)|turn"
    + _SP
    + r"on)"
    + _SP
    + r"(?:the"
    + _SP
    + r")?(?:developer|god|jailbreak|dan|unrestricted)"
    + _SP
    + r"mode\b"
)
_EXFIL = (
    r"\b(?:reveal|show|print|repeat|output|display|tell"
    + _SP
    + r"me|what"
    + _SP
    + r"(?:is|are|was|were)|give"
    + _SP
    + r"me|leak|dump|share|recite)"
    + _SP
    + r"(?:me"
    + _SP
    + r")?(?:your|the"
    + _SP
    + r"(?:hidden|secret))"
    + _SP
    + r"(?:(?:full|entire|exact|original|hidden|secret|initial|verbatim)"
    + _SP
    + r"){0,2}(?:system"
    + _SP
    + r"(?:prompt|message|instructions)|initial"
    + _SP
    + r"(?:prompt|instructions)|hidden"
    + _SP
    + r"(?:prompt|instructions)|pre-?prompt"
    + r"|instructions)\b"
)
_ABOVE = (
    r"\b(?:repeat|print|output|recite)"
    + _SP
    + r"(?:all"
    + _SP
    + r"|the"
    + _SP
    + r"|everything"
    + _SP
    + r")?(?:words|text|everything|lines|content)"
    + _SP
    + r"(?:above|before"
    + _SP
    + r"this)\b"
)
_TEMPLATE = r"<\|(?:im_start|im_end|system|endoftext)\|>|\[/?INST\]|<<SYS>>"


def _rule(detail: str, pattern: str) -> RegexRule:
    return RegexRule(Category.PROMPT_INJECTION, detail, re.compile(pattern, re.IGNORECASE))


INJECTION_RULES: tuple[RegexRule, ...] = (
    _rule("injection.override", _OVERRIDE),
    _rule("injection.persona", _PERSONA),
    _rule("injection.dan", _DAN),
    _rule("injection.mode", _MODE),
    _rule("injection.exfiltration", _EXFIL),
    _rule("injection.exfiltration", _ABOVE),
    _rule("injection.template_tokens", _TEMPLATE),
)


class InjectionClassifier(RegexClassifier):
    """The prompt-injection rules above as a classifier."""

    def __init__(self) -> None:
        super().__init__(INJECTION_RULES)
