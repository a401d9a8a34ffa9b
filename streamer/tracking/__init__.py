"""Tracking: which detection is which face from frame to frame, and where a tracked face is.

Pure per-stream logic on boxes, thumbnails and frames (tracker, Kalman filter,
association, appearance, shot cuts, placement from landmarks, the detection schedule,
and the follower that ties them together); no Ray, no I/O, no models."""
