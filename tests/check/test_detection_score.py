"""The detection scoring rules (``xruntime_emotion.check.detection_score``): faces a data set marks to be ignored."""

from __future__ import annotations

from xruntime_emotion.check.detection_score import FALSE, HIT, IGNORED, Tally, judge
from xruntime_emotion.runtime.detect import Box


def test_a_face_marked_ignore_is_scored_like_one_below_the_minimum() -> None:
    """A box on a face marked ignore is ignored whatever the face's size (blown up past 2x: false), the face
    is never a miss, and the faces of ``truth`` are scored as before."""
    face, marked = Box(100, 100, 100, 100), Box(400, 100, 80, 80)
    found = [Box(100, 100, 100, 100), Box(405, 105, 80, 80), Box(380, 60, 170, 170), Box(300, 300, 50, 50)]
    j = judge(found, [face], ignore=[marked])
    assert j.boxes == (HIT, IGNORED, FALSE, FALSE) and j.faces == (True,)  # 170 px > 2x 80 px: false
    assert judge(found, [face, marked]).boxes == (HIT, HIT, FALSE, FALSE)  # not marked: a face like any
    missed = judge([], [face], ignore=[marked])
    assert missed.faces == (False,)  # only the face of truth can be missed
    t = Tally()
    t.add(j)
    t.add(missed)
    assert (t.faces, t.hits, t.false, t.ignored) == (2, 1, 2, 1) and t.precision == 1 / 3
