"""Whole-file xdist scheduling that survives a crashed worker (used by ``conftest.py``).

xdist 3.8's ``--dist loadfile`` sends each test file whole to one worker (a module fixture, a
fitted model, is built once), but a crashed worker breaks it: its replacement is handed every file
the dead worker ever ran, the finished ones as empty work that never completes, and waits forever
(pytest-xdist#1323, #1327, #1378); with restarts off (``--max-worker-restart 0``) one crash ends the
whole run instead, and every file still queued is never run. :class:`WholeFileScheduling` keeps
the file grouping and fixes the crash path:

- only the files the dead worker had not finished go back on the queue, at its front (the longest
  files run first, and these were started early);
- the test it crashed on is run once more, on the replacement worker, and its report reads
  ``RERUN``; a second crash on the same test fails it. The rare XLA segfault of a CPU compilation
  (about one full run in eight here) thus costs the rest of one file again, not the run; a test that
  crashes its worker every time still fails;
- a worker given a last file of one test is told to shut down at once: an xdist worker starts a
  test only when it knows the next one (or that there is none), and would wait forever;
- a replacement worker still collecting is not given work until it has its collection (two crashes
  close together raised a KeyError in xdist's scheduler).
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
from xdist.scheduler import LoadScopeScheduling

#: test outcome written on the crash report of a test that will run again
RERUN = "rerun"


class WholeFileScheduling(LoadScopeScheduling):
    """``--dist loadfile`` in the collection's order, with the crash handling above."""

    def __init__(self, config, log=None):
        super().__init__(config, log)
        self.crashed_once: set[str] = set()  # tests put back on the queue for their one rerun
        self.crashed_twice: set[str] = set()  # tests failed for good

    def _split_scope(self, nodeid: str) -> str:
        return nodeid.split("::", 1)[0]

    def will_rerun(self, nodeid: str) -> bool:
        return nodeid in self.crashed_once and nodeid not in self.crashed_twice

    def remove_node(self, node):
        workload = self.assigned_work.pop(node)
        pending = [nodeid for unit in workload.values() for nodeid, done in unit.items() if not done]
        if not pending:  # a clean shutdown
            return None
        crashitem = pending[0]  # a worker runs its tests in the order it was sent them
        if crashitem in self.crashed_once:
            self.crashed_twice.add(crashitem)
            workload[self._split_scope(crashitem)][crashitem] = True  # its file goes on without it
        else:
            self.crashed_once.add(crashitem)
        requeued = OrderedDict((scope, unit) for scope, unit in workload.items() if not all(unit.values()))
        requeued.update(self.workqueue)
        self.workqueue = requeued
        for other in self.assigned_work:
            self._reschedule(other)
        return crashitem

    def _reschedule(self, node) -> None:
        # a replacement still collecting gets its work when it is done (xdist schedules then)
        if node.shutting_down or node not in self.registered_collections:
            return
        if not self.workqueue:
            node.shutdown()
            return
        if self._pending_of(self.assigned_work[node]) > 2:
            return
        self._assign_work_unit(node)
        # a worker holding one test and no next one would wait forever for it
        if self._pending_of(self.assigned_work[node]) < 2 and self.workqueue:
            self._assign_work_unit(node)
        if not self.workqueue:
            node.shutdown()


class CrashRerunReporting:
    """The hooks that turn the first crash report of a test into a ``RERUN`` line."""

    @pytest.hookimpl
    def pytest_handlecrashitem(self, crashitem, report, sched):
        if isinstance(sched, WholeFileScheduling) and sched.will_rerun(crashitem):
            report.outcome = RERUN
            report.longrepr = f"{report.longrepr}; it runs again on a new worker"

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report, config):
        if report.outcome == RERUN:
            return RERUN, "R", ("RERUN", {"yellow": True})
        return None
