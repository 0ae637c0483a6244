"""The shapes a timeline is made of (lanes, bars, markers, bands, links); laid out by
:mod:`celery_chaos.report.timeline`, drawn by the ``timeline.html.j2`` template. Times are
seconds from the workload start."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Lane:
    key: str
    label: str
    kind: str  # nemesis | client | broker | worker | pool
    worker: str | None = None
    detail: str = ""
    index: int = 0
    lifelines: list[tuple[float, float, str]] = field(default_factory=list)  # t0, t1, css


@dataclass
class Bar:
    """One attempt, from its start to its end (or death, or the end of the run)."""

    lane: int
    t0: float
    t1: float
    ending: str  # success | failure | retry | killed | oom | running | other
    task_id: str
    attempt: int
    info: dict[str, Any]
    ticks: list[tuple[float, str]] = field(default_factory=list)
    label: str = ""
    anomalous: bool = False


@dataclass
class Marker:
    lane: int
    t: float
    kind: str
    label: str
    info: dict[str, Any]
    css: str = ""


@dataclass
class Band:
    lanes: list[int]
    t0: float
    t1: float
    css: str
    label: str


@dataclass
class Link:
    """A redelivery: from an interrupted attempt's death to the next attempt's start."""

    lane0: int
    t0: float
    lane1: int
    t1: float
    latency: float
    task_id: str


@dataclass
class Timeline:
    lanes: list[Lane] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    faults: list[Marker] = field(default_factory=list)
    dispatches: list[Marker] = field(default_factory=list)
    marks: list[Marker] = field(default_factory=list)
    tags: list[Marker] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    start: float = 0.0  # the earliest time shown, seconds from the workload start
    end: float = 1.0
    epoch: float = 0.0  # the workload start as epoch seconds
    first: float = 0.0  # the first dispatch, attempt or fault: where the default view begins

    def lane_index(self, key: str) -> int | None:
        return next((lane.index for lane in self.lanes if lane.key == key), None)
