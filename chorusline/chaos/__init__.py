"""The fault-injection suite as a product: scenarios, a history, and its checker.

``chorusline chaos run`` drives a deployment with realistic chat load while a schedule
injects faults (actors through the admin API; processes and the network to PostgreSQL
and Redis when it spawned the servers), records every operation as a Jepsen-style history
and checks it against what the system durably holds afterwards. An HTTP client of the
server: nothing of the server is imported here, so it can test any deployment.
"""

from chorusline.chaos.checker import (
    INVARIANTS,
    Expect,
    Invariant,
    Verdict,
    acknowledged_stored,
    check,
    documented_errors_only,
    no_duplicates,
    quiescent,
    rate_limits_held,
    recovered,
    sequences_well_formed,
    streamed_replies_stored,
    streams_ended,
)
from chorusline.chaos.history import Fault, History, Op
from chorusline.chaos.proxy import FaultProxy, open_fault_proxy
from chorusline.chaos.readback import Readback, read_back
from chorusline.chaos.report import report_json, verdict_table, violation_lines, write_report
from chorusline.chaos.run import Outcome, RunOptions, run_all, run_scenario
from chorusline.chaos.scenarios import SCENARIOS, Scenario, select_scenarios
from chorusline.chaos.schedule import Faults
from chorusline.chaos.targets import Target, open_spawned
from chorusline.chaos.workload import Workload

__all__ = [
    "INVARIANTS",
    "SCENARIOS",
    "Expect",
    "Fault",
    "FaultProxy",
    "Faults",
    "History",
    "Invariant",
    "Op",
    "Outcome",
    "Readback",
    "RunOptions",
    "Scenario",
    "Target",
    "Verdict",
    "Workload",
    "acknowledged_stored",
    "check",
    "documented_errors_only",
    "no_duplicates",
    "open_fault_proxy",
    "open_spawned",
    "quiescent",
    "rate_limits_held",
    "read_back",
    "recovered",
    "report_json",
    "run_all",
    "run_scenario",
    "select_scenarios",
    "sequences_well_formed",
    "streamed_replies_stored",
    "streams_ended",
    "verdict_table",
    "violation_lines",
    "write_report",
]
