"""The person rules of streamer.persons.book on embeddings of known distances (the real
embedding on real faces: tests/workers/test_identity.py, tests/streamer/pipeline/test_session_persons.py)."""
from __future__ import annotations

import itertools

import numpy as np

from streamer.config import IdentityConfig
from streamer.persons.book import PersonBook, PersonReason
from workers.identity import FaceIdentity

CFG = IdentityConfig(every_s=2.0, first_samples=1, same_person_max=0.5, split_min=0.7)
rng = np.random.default_rng(0)


def _person() -> np.ndarray:
    """A point far (about 1.4) from every other person's."""
    v = rng.normal(size=128)
    return v / np.linalg.norm(v)


def _near(v: np.ndarray, d: float = 0.2) -> np.ndarray:
    """A sample of the same face: ``d`` away from ``v``."""
    n = rng.normal(size=128)
    n -= (n @ v) * v
    return v + d * n / np.linalg.norm(n)


def _book() -> PersonBook:
    ids = itertools.count(100)
    return PersonBook(CFG, FaceIdentity.distance, lambda: next(ids))


def _sample(book: PersonBook, frame: int, on_screen: dict[int, np.ndarray], usable: bool = True):
    book.seen(frame, list(on_screen))
    return [e for track, emb in on_screen.items() for e in book.observe(frame, track, emb, usable)]


def test_a_face_that_comes_back_is_the_same_person_and_a_new_face_a_new_one():
    a, b = _person(), _person()
    book = _book()
    (e,) = _sample(book, 0, {1: _near(a)})
    assert (e.track_id, e.person_id, e.reason) == (1, 1, PersonReason.NEW)
    book.end(1)
    (e,) = _sample(book, 50, {2: _near(a)})            # after an exit or a cut: a new track
    assert (e.track_id, e.person_id, e.reason) == (2, 1, PersonReason.LINKED) and e.distance < 0.5
    assert book.who(2) == (2, 1)
    (e,) = _sample(book, 51, {2: _near(a), 3: _near(b)})   # track 2 again: no event
    assert (e.track_id, e.person_id, e.reason) == (3, 3, PersonReason.NEW)


def test_two_faces_on_screen_together_are_two_people_however_alike():
    a = _person()
    book = _book()
    events = _sample(book, 0, {1: _near(a, 0.1), 2: _near(a, 0.1)})
    assert [(e.track_id, e.person_id, e.reason) for e in events] == [(1, 1, PersonReason.NEW),
                                                                    (2, 2, PersonReason.NEW)]


def test_a_small_or_turned_face_gets_its_own_person_until_a_usable_sample_links_it():
    a = _person()
    book = _book()
    _sample(book, 0, {1: _near(a)})
    book.end(1)
    (e,) = _sample(book, 10, {2: _near(a)}, usable=False)
    assert (e.person_id, e.reason) == (2, PersonReason.NEW)
    assert book.person_ids() == {1, 2}                 # for now, track 2 is a person of its own
    (e,) = _sample(book, 60, {2: _near(a)})
    assert (e.track_id, e.person_id, e.reason) == (2, 1, PersonReason.LINKED)
    assert book.who(2) == (2, 1)
    assert book.person_ids() == {1}                    # what a run's summary counts


def test_an_identity_jump_splits_the_track_and_finds_its_person():
    a, b = _person(), _person()
    book = _book()
    _sample(book, 0, {1: _near(a)})
    book.end(1)
    _sample(book, 5, {2: _near(b)})
    assert _sample(book, 55, {2: _near(b)}) == []      # the same face again: nothing happens
    assert _sample(book, 105, {2: _near(a)}) == []     # a missed cut? one far sample only asks again
    assert book.wants_sample(2, 105.01)                # at once
    (e,) = _sample(book, 106, {2: _near(a)})          # far again: now it is a's face
    assert e.reason == PersonReason.SPLIT and e.previous_track_id == 2 and e.track_id == 100
    assert e.person_id == 1 and e.distance > CFG.split_min
    assert book.who(2) == (100, 1)


def test_one_far_sample_splits_nothing():
    a, b = _person(), _person()
    book = _book()
    _sample(book, 0, {1: _near(a)})
    assert _sample(book, 50, {1: _near(b)}) == []     # a hand before the face, a blur
    assert _sample(book, 51, {1: _near(a)}) == []     # and it is a again
    assert _sample(book, 100, {1: _near(b)}) == []    # a later far sample starts the count afresh
    assert book.who(1) == (1, 1)


def test_the_calibrated_thresholds_are_the_defaults():
    from workers import identity

    cfg = IdentityConfig()
    assert (cfg.same_person_max, cfg.split_min, cfg.min_face_px) == (
        identity.SAME_PERSON_MAX, identity.SPLIT_MIN, identity.MIN_FACE_PX)


def test_samples_are_asked_for_at_birth_and_then_every_few_seconds():
    book = _book()
    asked = [pts for pts in np.arange(0, 5, 0.5) if book.wants_sample(7, float(pts))]
    assert asked == [0.0, 2.0, 4.0]
    book.end(7)
    assert book.wants_sample(7, 4.5)
    ids = itertools.count(100)
    early = PersonBook(IdentityConfig(every_s=2.0, first_samples=3, first_every_s=0.2), FaceIdentity.distance,
                       lambda: next(ids))
    asked = [round(float(pts), 1) for pts in np.arange(0, 5, 0.1) if early.wants_sample(7, float(pts))]
    assert asked == [0.0, 0.2, 0.4, 2.4, 4.4]   # three at its start, then every 2 s
