"""Persons within one stream: which tracks show one face, from a learned identity embedding.

A track is what the tracker could follow; a person is who the face is. The tracker loses
a face behind an occlusion, when it leaves the frame and comes back, and at every shot cut
(a cut ends every track on purpose: boxes cannot be trusted across it). Each of those
starts a new track. :class:`PersonBook` gives every track a ``person_id`` and lets the
tracks of one face share it, using face-identity embeddings (workers/identity.py) sampled
at a track's birth, then every ``identity.every_s`` seconds; a track whose person is still
its own (no earlier person matched) is sampled up to ``identity.first_samples`` times
``first_every_s`` apart first (one sample is noisy: two frames of one face can be as far
apart as two people's means), so that a face seen badly at first finds its person soon.

The rules, per sample of a track (a sample is *usable* when the face is at least
``min_face_px`` and turned no more than ``max_yaw``; dlib's embedding is unreliable on
small and profile faces):

- A track's first usable sample links it to the nearest person closer than
  ``same_person_max`` (distance to the mean of that person's usable samples), unless that
  person is on screen in the same frame under another track: two faces seen at once are
  two people, however alike. Otherwise the track starts a new person, whose id is the
  track's own id (ids are never reused, so neither are person ids).
- A track born with an unusable sample (small, turned, cut by the frame's edge) gets a
  person of its own at once, so that its records carry an id from the first frame. While
  its person is its own, every usable sample tries again with the track's running mean:
  a face first seen half out of the frame or blurred still finds its person once it is
  seen well (a ``person`` event says so; the records from then on carry the earlier id).
- A usable sample further than ``split_min`` from its track's running mean makes the
  track suspect, and the next frame is sampled at once; if that sample is far too, the
  face under the track changed (a cut the cut detector missed, or a box that slid onto a
  neighbour) and the track is split: from this frame it has a new track id and is
  matched to persons afresh, and its smoothing starts again. One far sample (a blur, a
  hand before the face) splits nothing.

Where new persons get their ids, and whether persons of other streams are looked for,
is injected (:mod:`streamer.persons.gallery`): by default everything is in memory and per stream,
embeddings never leave the session, and a restarted session starts a new book (person ids
stay unique, since they are track ids, but tracks after a restart are not linked to
persons before it). With the gallery, a track that matches no person of its stream is
matched against the persons the deployment's streams have seen recently.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from streamer.config import IdentityConfig
from streamer.persons.gallery import PersonIds, StreamPersons

Distance = Callable[[np.ndarray, np.ndarray], np.ndarray]   # (M, D), (N, D) -> (M, N)


class PersonReason(str, enum.Enum):
    """Why a track has the person it has (the ``reason`` of a ``person`` event)."""

    NEW = "new"          # no earlier person matched: this track starts one
    LINKED = "linked"    # the face matched an earlier track's person
    SPLIT = "split"      # the track's identity jumped: the rest of it is a new track


@dataclass(frozen=True)
class PersonEvent:
    """A track got (or changed) its person; published as a ``person`` event."""

    frame_index: int
    track_id: int                  # the published track id (after a split, the new one)
    person_id: int
    reason: PersonReason
    distance: float | None = None  # to the person it joined (LINKED), or the jump (SPLIT)
    previous_track_id: int | None = None   # SPLIT: the track it was cut from

    def fields(self) -> dict[str, int | float | str | None]:
        """The event's info, as the sinks take it."""
        return {"frame_index": self.frame_index, "track_id": self.track_id, "person_id": self.person_id,
                "reason": self.reason.value, "distance": self.distance,
                "previous_track_id": self.previous_track_id}


@dataclass
class _Person:
    person_id: int
    total: np.ndarray | None = None   # sum of its usable samples
    count: int = 0

    def add(self, embedding: np.ndarray) -> None:
        self.total = embedding.astype(np.float64) if self.total is None else self.total + embedding
        self.count += 1

    def mean(self) -> np.ndarray | None:
        return None if self.total is None else self.total / self.count


@dataclass
class _TrackIdentity:
    published_id: int             # the track id records carry (changes at a split)
    person_id: int
    own_person: bool              # its person was started by it and holds no other track
    mean: np.ndarray | None = None  # running mean of its usable samples
    samples: int = 0
    seen_frame: int = -1
    suspect: bool = False         # its newest usable sample was far from its mean


class PersonBook:
    """One stream's persons. The session's track stage asks :meth:`wants_sample`; its
    publish stage, in frame order, calls :meth:`seen` for each frame's tracks, then
    :meth:`observe` for each sample that came back, then reads :meth:`who`."""

    def __init__(self, cfg: IdentityConfig, distance: Distance, new_track_id: Callable[[], int],
                 ids: PersonIds | None = None):
        self.cfg = cfg
        self._distance = distance
        self._new_track_id = new_track_id
        self._ids = ids or StreamPersons()
        self._tracks: dict[int, _TrackIdentity] = {}   # by the tracker's id
        self._persons: dict[int, _Person] = {}
        self._requested: dict[int, tuple[float, int]] = {}   # tracker id -> (pts of its newest request, requests)
        self._final: dict[int, int] = {}   # published track id -> its person now (every track met)

    def person_ids(self) -> set[int]:
        """The persons of every track met so far, as they stand now (a live track's own,
        provisional person is counted only while nothing has linked it elsewhere)."""
        return set(self._final.values())

    def wants_sample(self, track_id: int, pts: float) -> bool:
        """Whether the track stage should cut an identity patch of this track at ``pts``
        (its first frame; while its person is its own, up to ``first_samples`` in all
        ``first_every_s`` apart; then every ``every_s``); marks it asked when it says yes."""
        last, asked = self._requested.get(track_id, (None, 0))
        t = self._tracks.get(track_id)
        unsure = t is None or t.own_person
        every = self.cfg.first_every_s if unsure and asked < self.cfg.first_samples else self.cfg.every_s
        if last is not None and pts - last < every:
            return False
        self._requested[track_id] = (pts, asked + 1)
        return True

    def seen(self, frame_index: int, track_ids: list[int]) -> None:
        """The tracker ids on screen in this frame (before its samples are observed)."""
        for track_id in track_ids:
            t = self._tracks.get(track_id)
            if t is None:   # born: a person of its own until a sample says otherwise
                person_id = self._ids.new_person(track_id)
                t = self._tracks[track_id] = _TrackIdentity(track_id, person_id, True)
                self._persons[person_id] = _Person(person_id)
                self._final[track_id] = person_id
            t.seen_frame = frame_index

    def who(self, track_id: int) -> tuple[int, int]:
        """(published track id, person id) of a tracker id that :meth:`seen` has met."""
        t = self._tracks[track_id]
        return t.published_id, t.person_id

    def observe(self, frame_index: int, track_id: int, embedding: np.ndarray, usable: bool) -> list[PersonEvent]:
        """One identity sample of a track seen in ``frame_index``; the person events it causes.
        A sample of a track that has ended since (a live stream's come back late) is dropped."""
        t = self._tracks.get(track_id)
        if t is None:
            return []
        events: list[PersonEvent] = []
        first = t.samples == 0
        t.samples += 1
        if not usable:
            if first:
                events.append(PersonEvent(frame_index, t.published_id, t.person_id, PersonReason.NEW))
            return events
        embedding = np.asarray(embedding, np.float64)
        if t.mean is not None:
            jump = float(self._distance(embedding[None], t.mean[None])[0, 0])
            if jump > self.cfg.split_min:
                if t.suspect:   # twice in a row: the face changed
                    return [self._split(frame_index, track_id, t, embedding, jump)]
                t.suspect = True
                _, asked = self._requested.get(track_id, (0.0, 1))
                self._requested[track_id] = (-math.inf, asked)   # so the next frame is sampled at once
                return events
            t.suspect = False
            t.mean = t.mean + (embedding - t.mean) / min(t.samples, 10)   # recent samples count more
            if t.own_person:   # seen better now: is it an earlier person after all?
                events.extend(self._link(frame_index, track_id, t, t.mean, announce_new=False))
            self._add(t.person_id, embedding)
            return events
        # the first usable sample: join an earlier person, or keep its own
        t.mean = embedding
        if t.own_person:
            events.extend(self._link(frame_index, track_id, t, embedding, announce_new=first))
        self._add(t.person_id, embedding)
        return events

    def end(self, track_id: int) -> None:
        """The tracker ended this track: forget it (its person stays, for later tracks)."""
        self._requested.pop(track_id, None)
        t = self._tracks.pop(track_id, None)
        person = None if t is None else self._persons.get(t.person_id)
        if person is not None and person.count == 0:
            del self._persons[person.person_id]   # never sampled usably: nobody can link to it

    # ---- rules ---------------------------------------------------------------------------

    def _add(self, person_id: int, embedding: np.ndarray) -> None:
        person = self._persons[person_id]
        person.add(embedding)
        mean = person.mean()
        assert mean is not None   # it has a sample now
        self._ids.remember(person_id, mean, person.count)

    def _link(self, frame_index: int, track_id: int, t: _TrackIdentity, embedding: np.ndarray,
              announce_new: bool) -> list[PersonEvent]:
        """Move a track that holds a person of its own to the nearest earlier person, if one
        is near enough and not on screen under another track."""
        on_screen = {o.person_id for k, o in self._tracks.items() if k != track_id and o.seen_frame == frame_index}
        candidates = [p for p in self._persons.values()
                      if p.person_id != t.person_id and p.count and p.person_id not in on_screen]
        match: tuple[_Person, float] | None = None
        if candidates:
            means = np.stack([p.mean() for p in candidates])   # type: ignore[misc]  # count > 0: a mean
            d = self._distance(embedding[None], means)[0]
            best = int(np.argmin(d))
            if d[best] <= self.cfg.same_person_max:
                match = candidates[best], float(d[best])
        if match is None:   # none of this stream's: one the other streams saw?
            found = self._ids.find(embedding, on_screen | set(self._persons))
            if found is not None:
                person = self._persons[found[0]] = _Person(found[0], np.asarray(found[1], np.float64), 1)
                match = person, float(self._distance(embedding[None], found[1][None])[0, 0])
        if match is None:
            return [PersonEvent(frame_index, t.published_id, t.person_id, PersonReason.NEW)] if announce_new else []
        own = self._persons.pop(t.person_id, None)   # held by this track alone: its samples move
        if own is not None and own.total is not None:
            match[0].total = own.total if match[0].total is None else match[0].total + own.total
            match[0].count += own.count
        t.person_id, t.own_person = match[0].person_id, False
        self._final[t.published_id] = t.person_id
        return [PersonEvent(frame_index, t.published_id, t.person_id, PersonReason.LINKED, match[1])]

    def _split(self, frame_index: int, track_id: int, t: _TrackIdentity, embedding: np.ndarray,
               jump: float) -> PersonEvent:
        previous = t.published_id
        new_id = self._new_track_id()
        person_id = self._ids.new_person(new_id)
        t.published_id, t.person_id, t.own_person, t.mean, t.samples = new_id, person_id, True, embedding, 1
        t.suspect = False
        self._persons[person_id] = _Person(person_id)
        self._link(frame_index, track_id, t, embedding, announce_new=False)
        self._final[new_id] = t.person_id
        self._add(t.person_id, embedding)
        return PersonEvent(frame_index, new_id, t.person_id, PersonReason.SPLIT, jump, previous)
