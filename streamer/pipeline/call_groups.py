"""One Ray call for the regressor requests of every stream a process hosts, while one is out.

A Ray actor call costs about 1.4 ms of CPU between its caller and the actor whatever it
carries (``bench/ray_call_cost.py``): four 720p30 cameras send the regressor 120 calls a
second, a sixth of a core spent on calls. The streams of one host (each in its own
session, on the host's event loop) usually ask at the same moments, and a replica runs one
batch at a time, so a request that comes while an earlier one is being answered would wait
in the replica's queue anyway. :class:`CallGroup` holds such requests in the calling process
instead and sends them, when the call in flight returns, as one call
(``RegressorReplica.predict_group``). A request that finds no call in flight goes at once:
one stream alone waits for nothing, and the replica batches and prioritises each request
of a group as it would a call of its own (``model.priority``). Live streams' requests and
files' travel in groups of their own: a camera's never waits for a file's call to return
(files' calls are large, and the replica may hold them back while a camera is behind).
"""
from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from workers.prediction import Prediction


@dataclass(frozen=True)
class CropRequest:
    """One session's crops for the regressor, as a group call carries them."""

    crops: np.ndarray       # (N, S, S, 3) uint8, cut with the checkpoint's crop rule
    live: bool = False      # from a live stream (read as model.mirror_average says)
    behind: bool = False    # from a live stream that is falling behind its camera


class CallGroup:
    """The requests one process sends one regressor replica: at most one call in flight;
    what comes meanwhile goes as the next call."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor
        self._waiting: list[tuple[CropRequest, asyncio.Future[Prediction]]] = []
        self._in_flight = False

    def submit(self, request: CropRequest) -> asyncio.Future[Prediction]:
        """The request's prediction, to await; sent now, or with the next call."""
        answer: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, answer))
        if not self._in_flight:
            self._send()
        return answer

    def _send(self) -> None:
        group, self._waiting = self._waiting, []
        self._in_flight = True
        ref = self._actor.predict_group.remote([request for request, _ in group])
        asyncio.ensure_future(self._deliver(ref, [answer for _, answer in group]))

    async def _deliver(self, ref: Any, answers: list[asyncio.Future[Prediction]]) -> None:
        try:
            results: list[Prediction | BaseException] = await ref
        except BaseException as e:   # the call failed as a whole (the replica is gone): every request
            results = [e] * len(answers)
        finally:
            self._in_flight = False
            if self._waiting:
                self._send()
        for answer, result in zip(answers, results):
            if answer.done():   # its session stopped waiting
                continue
            if isinstance(result, BaseException):
                answer.set_exception(result)
            else:
                answer.set_result(result)


# per event loop (a process's sessions share the host's), per replica and kind of stream
_GROUPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, bool], CallGroup]] = \
    weakref.WeakKeyDictionary()


def group_for(actor: Any, live: bool = False) -> CallGroup:
    """This event loop's call group for ``actor`` (a regressor replica's handle) and live
    streams' requests (or files'): sessions of one process hold their own copies of the
    handles, which name the same actor."""
    groups = _GROUPS.setdefault(asyncio.get_running_loop(), {})
    key = (actor._actor_id.hex(), live)
    if key not in groups:
        groups[key] = CallGroup(actor)
    return groups[key]
