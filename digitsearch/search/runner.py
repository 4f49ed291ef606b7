"""run_search(): a new search or, with --resume, the rest of one, with Ray started early.

What can be refused cheaply is refused before a folder is written or Ray starts; then a private
local Ray comes up in the background (session.starting_early) while this process imports torch
and Ray Tune and loads the data (new_search, resume): on 2 cores that overlap is most of the
command's start-up (issue 16). This module imports nothing heavy for that reason.
"""
from __future__ import annotations

from typing import Callable

from digitsearch.core.timebudget import Deadline
from digitsearch.search import session
from digitsearch.search.request import SearchRequest, fixed_on_resume, refuse_on_resume
from digitsearch.store import experiments


def run_search(req: SearchRequest, echo: Callable[[str], None] = print, earliest_stop_s: float | None = None):
    """Search, then write leaderboard.csv and best.json; returns rounds.SearchOutcome. `echo`
    gets the outcome; with req.quiet nothing else (the progress lines and tables go to `chatter`).
    With req.resume: finish the named experiment, then run req.add_trials more.
    `earliest_stop_s` (a time-limited search with a retrain after it): seconds from now after
    which the planner (search.planner) may end the search, once more search gains less than
    more final training; None: the search takes all of req.time_limit."""
    req = req.checked()
    # the limit counts from here: loading the data and starting Ray are part of what the user waits for
    deadline = Deadline.after(req.time_limit) if req.time_limit else None
    if req.resume:
        refuse_on_resume(fixed_on_resume(req))
        from digitsearch.search import resume  # Ray Tune: imported only now, see the module's text

        return resume.run(req, echo)
    session.check_reachable(req.address)
    if req.name:
        experiments.check_free(req.results, req.name)
    with session.starting_early(req.address, req.verbose):
        from digitsearch.search import new_search  # torch and Ray Tune (2 s) load while Ray starts

        earliest = Deadline.after(earliest_stop_s) if earliest_stop_s is not None and deadline else None
        return new_search.run(req, deadline, echo, earliest)
