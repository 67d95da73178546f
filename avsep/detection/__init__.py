"""Object detection (ultralytics YOLO): the detector trained offline, per-frame boxes and per-clip objects."""
