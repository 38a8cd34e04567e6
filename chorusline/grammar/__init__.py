"""Grammar-constrained decoding: compile a ``Grammar`` for a tokenizer, follow each
sequence through it, and say which tokens it may take next. No torch, no trio: the chat
layer uses it to refuse a bad schema before any engine work, the runtime to mask logits.
"""

from chorusline.grammar.compiler import GrammarCompiler
from chorusline.grammar.matcher import GrammarMatcher, allowed_bitmask

__all__ = ["GrammarCompiler", "GrammarMatcher", "allowed_bitmask"]
