"""Content moderation for chat turns: input checks, streaming output checks, PII redaction.

Pure synchronous Python (no trio, no torch): the conversation actor calls
``Moderator.check_input`` before any engine work, and feeds each streamed delta through
``Moderator.output_stream()``; a blocked reply is cut, replaced by the verdict's
refusal, marked ``blocked``, and each of ``verdict.records()`` is written with
``Store.record_moderation``. Classifiers find, the ``Policy`` decides.
"""

from chorusline.moderation.categories import (
    DEFAULT_REFUSALS,
    SELF_HARM_REFUSAL,
    Action,
    Category,
    Finding,
    ModerationRecord,
    Policy,
    Stage,
    Verdict,
    apply_redactions,
    decide,
)
from chorusline.moderation.classifier import (
    Classifier,
    CompositeClassifier,
    RegexClassifier,
    RegexRule,
    classify_lines,
    open_start,
)
from chorusline.moderation.injection import InjectionClassifier
from chorusline.moderation.pii import (
    PiiClassifier,
    bsn_valid,
    card_valid,
    luhn_valid,
    nino_valid,
    ssn_valid,
    steuer_id_valid,
)
from chorusline.moderation.rules import RuleClassifier
from chorusline.moderation.stream import Moderator, OutputModerator, default_classifier

__all__ = [
    "DEFAULT_REFUSALS",
    "SELF_HARM_REFUSAL",
    "Action",
    "Category",
    "Classifier",
    "CompositeClassifier",
    "Finding",
    "InjectionClassifier",
    "ModerationRecord",
    "Moderator",
    "OutputModerator",
    "PiiClassifier",
    "Policy",
    "RegexClassifier",
    "RegexRule",
    "RuleClassifier",
    "Stage",
    "Verdict",
    "apply_redactions",
    "bsn_valid",
    "card_valid",
    "classify_lines",
    "decide",
    "default_classifier",
    "luhn_valid",
    "nino_valid",
    "open_start",
    "ssn_valid",
    "steuer_id_valid",
]
