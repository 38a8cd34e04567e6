"""Supervision trees in the style of Erlang/OTP, on top of the actor kernel."""

from chorusline.supervisors.dynamic import (
    DynamicSupervisor,
    TooManyChildren,
    as_child_spec,
    dynamic_supervisor_spec,
)
from chorusline.supervisors.intensity import RestartIntensityExceeded
from chorusline.supervisors.spec import (
    AutoShutdown,
    Backoff,
    ChildSpec,
    Intensity,
    Restart,
    Strategy,
)
from chorusline.supervisors.supervisor import GetChild, Supervisor, WhichChildren, supervisor_spec

__all__ = [
    "AutoShutdown",
    "Backoff",
    "ChildSpec",
    "DynamicSupervisor",
    "GetChild",
    "Intensity",
    "Restart",
    "RestartIntensityExceeded",
    "Strategy",
    "Supervisor",
    "TooManyChildren",
    "WhichChildren",
    "as_child_spec",
    "dynamic_supervisor_spec",
    "supervisor_spec",
]
