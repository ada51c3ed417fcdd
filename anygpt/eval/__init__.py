"""Evaluation: independent judges (judges/) that score generated images, captions, speech and music."""
