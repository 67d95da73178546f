"""``avsep separate VIDEO``: apply a trained checkpoint to any video, with the DAG's own stage code.

One module per job:

* :mod:`avsep.separate.model` — load a checkpoint (HFRA family or LAVSS) with everything it carries (front-end,
  channels, frame rate, labels, CLIP encoder) and separate one window of audio;
* :mod:`avsep.separate.objects` — the sounding objects: detected by the detection stage's YOLO, given as
  ``--box`` or as ``--query-image``; and each object's visual query (box crop, frame, or image);
* :mod:`avsep.separate.windows` — overlapping windows with a constant-sum synthesis window and overlap-add,
  reading and writing window by window (memory bounded by the window, not the video);
* :mod:`avsep.separate.output` — stems written atomically and ``summary.png``;
* :mod:`avsep.separate.run` — the command: extract (:func:`avsep.data.prepare.decode.extract_clip`), objects,
  windows, outputs.

Every problem with the inputs is a :class:`SeparateError`: one line naming the file and the problem.
"""

from __future__ import annotations


class SeparateError(ValueError):
    """Bad input to ``avsep separate``: the message is one line naming the file (or option) and the problem."""
