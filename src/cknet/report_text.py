"""Reports for people: the tokenised text a model writes, made readable.

A model writes the tokenised form of the field's references (R2Gen's cleaning: lower
case, punctuation split off, ``"heart size is normal . no effusion ."``), which is what
the metrics compare (`cknet.evaluation` scores it). `readable_report` turns it into
sentences a radiologist reads (``"Heart size is normal. No effusion."``): punctuation
attached to the word before it, each sentence capitalised. A report cut at the length
limit ends mid-sentence (``"... there is a small"``): it is marked with an ellipsis, or,
with ``trim_incomplete``, cut back to its last full sentence. Words are not changed, so
the readable and the tokenised form score the same after the metrics' own cleaning.
"""

from __future__ import annotations

ATTACHED = {".", ",", ";", ":", "?", "!", ")", "%"}
SENTENCE_END = {".", "?", "!"}
INCOMPLETE_MARK = "…"


def readable_report(tokenized: str, trim_incomplete: bool = False) -> str:
    """The readable form of a tokenised report.

    Args:
        tokenized: words and punctuation separated by spaces.
        trim_incomplete: drop an unfinished last sentence (keep it, marked with an
            ellipsis, when it is the only one); by default it is kept and marked.

    Returns:
        The report with punctuation attached and sentences capitalised.

    Example:
        ```python
        readable_report("no effusion , no edema .")  # 'No effusion, no edema.'
        readable_report("lungs clear . a small")  # 'Lungs clear. A small…'
        readable_report("lungs clear . a small", trim_incomplete=True)  # 'Lungs clear.'
        ```
    """
    words = tokenized.split()
    if not words:
        return ""
    sentences: list[list[str]] = [[]]
    for word in words:
        sentences[-1].append(word)
        if word in SENTENCE_END:
            sentences.append([])
    unfinished = sentences.pop()  # words after the last sentence's end, often none
    if unfinished and trim_incomplete and sentences:
        unfinished = []
    texts = [_join(sentence) for sentence in sentences]
    if unfinished:
        texts.append(_join(unfinished) + INCOMPLETE_MARK)
    return " ".join(texts)


def _join(words: list[str]) -> str:
    """One sentence: punctuation attached, ``(`` joined to the next word, capitalised."""
    text = ""
    for word in words:
        if not text or word in ATTACHED or text.endswith("("):
            text += word
        else:
            text += " " + word
    return text[:1].upper() + text[1:]
