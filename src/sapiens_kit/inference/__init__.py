"""Inference on real-world inputs: finding inputs, writing outputs crash-safely, the image
pipeline (and, beside it, video, tracking and smoothing). Imported by ``sapiens_kit.predict`` when
a job runs, never at ``--help``."""
