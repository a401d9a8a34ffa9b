"""Predictions of a stream's tracked faces → FaceRecords: pose into image pixels, smoothing
per track, emotion labels held per track (the session's publish stage)."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

from streamer.config import EmotionConfig
from streamer.data.record import BoxSource, FaceRecord
from streamer.persons.book import PersonBook
from streamer.pipeline.pipes import FrameWork
from streamer.pipeline.smoothing import Smoothed, SmootherBank
from streamer.tracking.tracker import Track
from workers.crops import crop_to_image
from workers.emotion_labels import label as emotion_label
from workers.pose import euler_from_matrix, matrix_from_quaternion
from workers.prediction import Prediction, slice_prediction


def pose_in_image(pred: Prediction, affines: np.ndarray) -> np.ndarray:
    """(N, 6) yaw, pitch, roll, tx, ty, scale in the source image for crops cut with ``affines``.

    The network reports the face centre in crop pixels and a scale in crop pixels per
    centimetre; the crop affine maps the centre to image pixels, and its linear part
    (image pixels per crop pixel, the same on both axes) converts the scale.
    """
    centre = crop_to_image(pred.centre[:, None, :], affines)[:, 0, :]
    scale = pred.scale * affines[:, 0, 0]
    return np.column_stack([pred.euler, centre, scale])


class RecordBuilder:
    """Predictions of one stream's tracked faces → FaceRecords, smoothing per track.

    ``blendshapes`` reads smoothed etas (N, 29) as the 53 named blendshapes each (the face
    model's map, batched over a frame's faces); it is injected so that the builder does not
    load the face model itself.
    ``presence_threshold`` (the checkpoint's probe, None without one): a followed crop
    whose presence is below it is a doubted reading, which the smoothers do not follow
    (:mod:`streamer.pipeline.outliers`).
    """

    def __init__(self, stream_id: str, model_version: str, smoothers: SmootherBank,
                 blendshapes: Callable[[np.ndarray], np.ndarray], emotion: EmotionConfig | None = None,
                 presence_threshold: float | None = None):
        self.stream_id = stream_id
        self._presence_threshold = presence_threshold
        self.model_version = model_version
        self._smoothers = smoothers
        self._blendshapes = blendshapes
        self._emotion = emotion or EmotionConfig()
        self._held: dict[int, str] = {}   # each track's smoothed emotion label so far

    def frame(self, frame: FrameWork, pred: Prediction | None, first_row: int,
              persons: PersonBook | None = None) -> list[FaceRecord]:
        """Records of one frame, whose faces are rows ``first_row...`` of ``pred``;
        ``persons`` says each track's published id and person (None: identity is off)."""
        records = []
        if frame.tracks:
            assert pred is not None  # the faces of a frame are regressed
            poses = pose_in_image(slice_prediction(pred, first_row, first_row + len(frame.tracks)),
                                  frame.affines)
            now = time.time()
            smoothed = [self._smooth(frame.pts, track, pred, first_row + k, poses[k])
                        for k, track in enumerate(frame.tracks)]
            # one bounded solve for the frame's faces: a crowd's 20 faces one by one cost 12x as much
            blendshapes = self._blendshapes(np.stack([s.expression for s in smoothed]))
            for k, track in enumerate(frame.tracks):
                records.append(self._record(frame, track, pred, first_row + k, poses[k], now, persons,
                                            smoothed[k], blendshapes[k]))
        for track_id in frame.ended_ids:
            self.restart(track_id)
        return records

    def restart(self, track_id: int) -> None:
        """Forget a track's smoothing and held label: it ended, or its identity jumped and
        what follows is someone else (streamer.persons.book)."""
        self._smoothers.drop(track_id)
        self._held.pop(track_id, None)

    def _trusted(self, track: Track, presence: float) -> bool:
        """Whether the crop framed the face: the detector placed it, or the probe does not
        doubt it (a NaN presence, no probe, is not a doubt)."""
        t = self._presence_threshold
        return track.source == BoxSource.DETECTOR or t is None or not presence < t

    def _smooth(self, pts: float, track: Track, pred: Prediction, i: int, raw_pose: np.ndarray) -> Smoothed:
        return self._smoothers.update(track.track_id, pts, pred.expression[i], pred.quaternion[i],
                                      raw_pose[3:], pred.shape[i], pred.emotion_probs[i],
                                      trusted=self._trusted(track, float(pred.presence[i])))

    def _record(self, frame: FrameWork, track: Track, pred: Prediction, i: int, raw_pose: np.ndarray,
                now: float, persons: PersonBook | None, s: Smoothed, blendshapes: np.ndarray) -> FaceRecord:
        assert s.emotion_probs is not None   # the probabilities were given
        euler = euler_from_matrix(matrix_from_quaternion(s.quaternion))
        side = float(min(track.box[2] - track.box[0], track.box[3] - track.box[1]))
        # this frame's light and sharpness decide both labels: a face gone dark or blurred
        # abstains at once, whatever its smoothed probabilities
        seen = {"luminance": pred.luminance[i], "contrast": pred.contrast[i], "sharpness": pred.sharpness[i]}
        raw_label = emotion_label(pred.emotion_probs[i], side, raw_pose[0], raw_pose[1], self._emotion, **seen)[0]
        held = self._held.get(track.track_id)
        smooth_label = emotion_label(s.emotion_probs, side, euler[0], euler[1], self._emotion,
                                     held=None if held is None else [held], **seen)[0]
        self._held[track.track_id] = smooth_label
        track_id, person_id = persons.who(track.track_id) if persons is not None else (track.track_id, None)
        return FaceRecord(
            stream_id=self.stream_id, frame_index=frame.index, pts=frame.pts, wall_time=now,
            track_id=track_id, person_id=person_id, box=_f32(track.box), score=track.score,
            box_source=BoxSource(track.source), presence=float(pred.presence[i]),
            expression=_f32(s.expression), pose=_f32([*euler, *s.translation]),
            quaternion=_f32(s.quaternion), shape=_f32(s.shape),
            blendshapes=_f32(blendshapes),
            expression_raw=_f32(pred.expression[i]), pose_raw=_f32(raw_pose),
            quaternion_raw=_f32(pred.quaternion[i]), shape_raw=_f32(pred.shape[i]),
            model_version=self.model_version,
            emotion=smooth_label, emotion_probs=_f32(s.emotion_probs),
            emotion_raw=raw_label, emotion_probs_raw=_f32(pred.emotion_probs[i]),
        )


def _f32(values: ArrayLike) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)
