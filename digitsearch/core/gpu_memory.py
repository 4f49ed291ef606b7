"""A trial that runs out of GPU memory beside others: wait for room, or say that it does not fit.

Trials share a card (a GPU share below 1: four a card at 0.25). One that runs out of memory
may be the victim of its neighbours rather than too big: it frees its cached blocks and waits
until the card has the room its peak needs (`after_oom`), then runs its epoch again. Only a
trial that does not fit the card alone (`over budget: GPU memory`, with the figures), or one
whose neighbours never leave the room, counts against its config.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

GIB = 2**30
HEADROOM = 1.25  # the room asked for, over the peak the trial reached before it failed
WAIT_S = 300.0  # the longest wait for the neighbours to leave that room
POLL_S = 2.0
RETRIES = 3  # epochs run again after running out of memory, per trial


@dataclass(frozen=True)
class Card:
    """One reading of the card, in bytes: free, total, and what this process's allocator holds."""

    free: int
    total: int
    own: int

    @property
    def others(self) -> int:
        """What the other processes on the card hold (the neighbours' tensors and CUDA contexts)."""
        return max(self.total - self.free - self.own, 0)


def read_card() -> Card:
    free, total = torch.cuda.mem_get_info()
    return Card(free, total, torch.cuda.memory_reserved())


def after_oom(peak: int, share: float, retries_left: int, read: Callable[[], Card] = read_card,
              sleep: Callable[[float], None] = time.sleep, wait_s: float = WAIT_S) -> str | None:
    """None when the epoch should run again: the card has room for `peak` (the bytes this trial's
    allocator reached, torch.cuda.max_memory_reserved) with HEADROOM. Otherwise the note the trial
    ends with: over budget when it would not fit the card alone, or had it to itself (`share` 1
    or more); out of memory when the neighbours kept the room past `wait_s` or the retries ran out.
    The caller has emptied its cache (torch.cuda.empty_cache) first."""
    card = read()
    needed = peak * HEADROOM
    figures = f"{peak / GIB:.2f} GiB at its peak on a {card.total / GIB:.1f} GiB card"
    if share >= 1 or needed > card.total - _context(card):
        return f"over budget: GPU memory: {figures}, more than the card holds for one trial"
    if retries_left <= 0:
        return f"out of memory: {figures}, still short after {RETRIES} waits for the other trials"
    waited = 0.0
    while card.free + card.own < needed:
        if waited >= wait_s:
            return (f"out of memory: {figures}; other trials held {card.others / GIB:.2f} GiB for "
                    f"{wait_s:.0f} s")
        sleep(POLL_S)
        waited += POLL_S
        card = read()
    return None


def _context(card: Card) -> int:
    """What a card keeps for its CUDA contexts and fragments, never the trial's: 5 %."""
    return card.total // 20
