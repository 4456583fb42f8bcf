"""Text of one choice as its final tokens arrive: incremental detokenisation, stop strings, max_tokens."""
from __future__ import annotations

from typing import Callable


class ChoiceText:
    """Feed final token ids in order; get back the text that is safe to send.

    Text is held back while it could still change: a trailing partial UTF-8 character (decoded as U+FFFD) and
    the last len(longest stop) - 1 characters, which could begin a stop string. The choice is done when a stop
    string appears (text cut before it, reason "stop") or `limit` tokens arrived (reason "length").
    """

    def __init__(self, detokenize: Callable[[list[int]], str], stops: list[str] | None, limit: int) -> None:
        self.detokenize, self.stops, self.limit = detokenize, stops or [], limit
        self.ids: list[int] = []
        self.sent = ""
        self.done = False
        self.reason: str | None = None

    def feed(self, new_ids: list[int]) -> str:
        if self.done:
            return ""
        self.ids += new_ids[: self.limit - len(self.ids)]
        if len(self.ids) >= self.limit:
            self.done, self.reason = True, "length"
        return self._emit(final=self.done)

    def finish(self, reason: str) -> str:
        """The engine finished the request (eos → "stop", length → "length"); flush everything held back."""
        if self.done:
            return ""
        self.done, self.reason = True, "stop" if reason == "eos" else "length"
        return self._emit(final=True)

    def _emit(self, final: bool) -> str:
        text = self.detokenize(self.ids) if self.ids else ""
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            text, self.done, self.reason, final = text[:cut], True, "stop", True
        if not final:
            text = text.rstrip("\ufffd")
            hold = max((len(s) for s in self.stops), default=1) - 1
            text = text[: len(text) - hold] if hold else text
        if not text.startswith(self.sent):   # an earlier character changed (cannot happen for final tokens)
            text = self.sent
        delta, self.sent = text[len(self.sent):], max(text, self.sent, key=len)
        return delta
