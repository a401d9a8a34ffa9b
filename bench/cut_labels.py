"""Hard cuts in the real edited clips under ``shared/data/real/video/cuts`` (SOURCE.md
there), labelled by hand, for ``bench/cuts_real.py`` and ``tests/streamer/tracking/test_cuts.py``.

A number is the index of the first frame of a new shot. Frames are numbered as
:class:`streamer.sources.files.FileSource` numbers them: every frame PyAV decodes, in decode
order, from 0 (checked: FileSource yields the same 160 / 628 / 250 frames, pixel for pixel,
as ``av.open(path).decode(video=0)``).

How: every frame of each clip was decoded with PyAV and laid out on contact sheets (all
frames, 88–128 px wide, numbered), then the frames around every candidate (and around
every frame where the thumbnail change or the colour-histogram distance of
streamer/tracking/cuts.py stood out) were looked at again at 216–320 px wide. A cut is where the
picture is of another shot from one frame to the next; a camera move, however quick, is
not.

- ``film_trailer_vfr.mp4``: 0–59 a monitor with a messenger window ("Send Spike") in a
  dark room; 60–139 a close shot of the screen, "Initiate Search
  Program" being typed; 140–159 two people in close shot. Variable frame rate: frame
  intervals alternate 1001 and 2002 ticks of 1/24000 s (80 and 79 of them), one frame in
  three of 23.976 fps dropped.
- ``documentary_576p.mp4``: 0–69 fingers holding something small against dark red; 70–169 a
  glass vessel close up; 170–300 two people at a table in a store room; 301–420 hands
  over a glass bowl; 421–483 small objects on the table (461–465: a hand leaves and the
  camera shifts, not a cut); 484–627 hands close up against dark red.
- ``fades.mp4``: no picture at all, every frame one flat grey (pixel standard deviation 0)
  fading black → white → black three times (means 0 … 255 … 1 … 255 … 1 … 255 … 9); no
  hard cut. (SOURCE.md calls them nature shots; the decoded frames are flat.)

The single-shot clips directly under ``shared/data/real/video`` (talking heads, a head
turning, a walking crowd) have no cut: each is one continuous shot (as their source says;
their thumbnail change from frame to frame never passes 0.06, a third of the smallest
change at a labelled cut, 0.14).
"""
from __future__ import annotations

CUTS: dict[str, tuple[int, ...]] = {
    "film_trailer_vfr.mp4": (60, 140),
    "documentary_576p.mp4": (70, 170, 301, 421, 484),
    "fades.mp4": (),
}
FADES: frozenset[str] = frozenset({"fades.mp4"})   # gradual transitions only: a cut found there is invented

# Who the faces in the edited clips are, labelled by hand from crops of every track that
# `facestream analyze` reported (first and middle frame of each): (who, first frame, last
# frame, x range of the face's centre in source pixels). Detections elsewhere (hands, a
# glass vessel in the documentary's close-ups) are not faces.
PEOPLE: dict[str, tuple[tuple[str, int, int, float, float], ...]] = {
    "documentary_576p.mp4": (("woman at the table, left", 170, 300, 0, 300),
                             ("woman at the table, right", 170, 300, 300, 704)),
    "film_trailer_vfr.mp4": (("drawn face on the monitor", 0, 139, 0, 1280),   # both shots show it
                             ("man", 140, 159, 0, 550), ("woman", 140, 159, 550, 1280)),
}
