"""Constrained decoding: xgrammar masks every step's logits so the output follows the attribute schema."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import torch
import transformers
import xgrammar as xgr

from catalog_enrich.schema import json_schema


@lru_cache(maxsize=4)
def _compiled_schema(tokenizer: Any, vocab_size: int, stop_token_ids: tuple[int, ...]) -> xgr.CompiledGrammar:
    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=list(stop_token_ids))
    # compact separators and no free whitespace: a model under JSON mode otherwise can emit
    # whitespace forever and never close the object
    return xgr.GrammarCompiler(info).compile_json_schema(
        json.dumps(json_schema()), any_whitespace=False, separators=(",", ":")
    )


def compile_schema(tokenizer: Any, vocab_size: int, stop_token_ids: list[int]) -> xgr.CompiledGrammar:
    """The attribute schema compiled for one tokenizer (cached per process)."""
    return _compiled_schema(tokenizer, vocab_size, tuple(stop_token_ids))


class SchemaLogitsProcessor(transformers.LogitsProcessor):
    """Masks logits so each row of a batch can only continue a schema-valid JSON object.

    One instance serves one ``generate`` call. Rows that already finished only get their stop or pad
    token, so the matcher never sees the padding generate appends after a finished row.
    """

    def __init__(self, compiled: xgr.CompiledGrammar, pad_token_id: int) -> None:
        self.compiled = compiled
        self.pad_token_id = pad_token_id
        self.matchers: list[xgr.GrammarMatcher] = []
        self.bitmask: torch.Tensor | None = None
        self.prompt_length = 0
        # fills every row's mask in one native call (threaded on machines with cores to spare) instead
        # of one Python call per row per step
        self._batch_matcher = xgr.BatchGrammarMatcher()

    def _start(self, input_ids: torch.LongTensor) -> None:
        self.matchers = [xgr.GrammarMatcher(self.compiled) for _ in range(input_ids.shape[0])]
        self.bitmask = xgr.allocate_token_bitmask(input_ids.shape[0], self.compiled.tokenizer_info.vocab_size)
        self.prompt_length = input_ids.shape[1]

    def _open_rows(self) -> list[int]:
        """Rows whose object is not finished yet."""
        return [row for row, matcher in enumerate(self.matchers) if not matcher.is_terminated()]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if not self.matchers:
            self._start(input_ids)
        elif input_ids.shape[1] > self.prompt_length:
            rows = self._open_rows()
            if rows:
                # one device-to-host copy of the last column; reading it row by row would wait on the
                # device once per row
                last = input_ids[:, -1].tolist()
                xgr.BatchGrammarMatcher.batch_accept_token([self.matchers[r] for r in rows], [last[r] for r in rows])
        assert self.bitmask is not None
        rows = self._open_rows()
        on_device = scores.device
        masked = scores.to("cpu") if on_device.type not in ("cuda", "cpu") else scores
        if rows:
            self._batch_matcher.batch_fill_next_token_bitmask(
                [self.matchers[r] for r in rows], self.bitmask, indices=rows
            )
            bitmask = self.bitmask.to(masked.device)
            xgr.apply_token_bitmask_inplace(masked, bitmask, vocab_size=masked.shape[-1], indices=rows)
        if len(rows) < len(self.matchers):
            open_rows = set(rows)
            finished = [row for row in range(len(self.matchers)) if row not in open_rows]
            index = torch.tensor(finished, device=masked.device)
            # a finished row keeps emitting padding; anything else would confuse the caller's decode
            masked[index] = float("-inf")
            masked[index, self.pad_token_id] = 0.0
        return masked.to(on_device)
