"""Tokenise a whole batch at once: one fast-tokenizer call for its single texts, one for its
pairs. An over-long input fails its own row (its request answers 422), never the batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.errors import InputTooLongError


@dataclass(frozen=True)
class TextRow:
    """What the encoder needs of a row: its text(s), its token limit, its index in its request."""

    text: str
    text_pair: str | None
    max_length: int
    index: int


Encoded = tuple[list[int], list[int] | None]  # input ids, token type ids


class BatchEncoder:
    def __init__(self, tokenizer, truncate: bool) -> None:
        self.tokenizer = tokenizer
        self.truncate = truncate

    def encode(self, rows: Sequence[TextRow]) -> list[Encoded | InputTooLongError]:
        out: list[Encoded | InputTooLongError] = [([], None)] * len(rows)
        singles = [i for i, r in enumerate(rows) if r.text_pair is None]
        pairs = [i for i, r in enumerate(rows) if r.text_pair is not None]
        for group in (singles, pairs):
            if not group:
                continue
            # Each distinct input once (a fan-out sends one text through several tasks).
            distinct = list(dict.fromkeys((rows[i].text, rows[i].text_pair) for i in group))
            texts = [t for t, _ in distinct]
            args = (texts, [p for _, p in distinct]) if group is pairs else (texts,)
            enc = self.tokenizer(*args, truncation=False, return_attention_mask=False)
            types = enc.get("token_type_ids")
            position = {key: n for n, key in enumerate(distinct)}
            for i in group:
                n = position[(rows[i].text, rows[i].text_pair)]
                encoded = (enc["input_ids"][n], types[n] if types is not None else None)
                out[i] = self._within_limit(rows[i], encoded)
        return out

    def _within_limit(self, row: TextRow, encoded: Encoded) -> Encoded | InputTooLongError:
        ids, limit = encoded[0], row.max_length
        if len(ids) <= limit:
            return encoded
        if not self.truncate:
            return InputTooLongError(
                f"input {row.index} has {len(ids)} tokens; the limit is {limit} "
                "(or enable truncation with UNIPELT_TRUNCATE=true)"
            )
        args = (row.text,) if row.text_pair is None else (row.text, row.text_pair)
        enc = self.tokenizer(*args, truncation=True, max_length=limit)
        return list(enc["input_ids"]), enc.get("token_type_ids")
