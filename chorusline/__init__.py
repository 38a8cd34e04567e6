"""Chorusline: a ChatGPT-class chat serving system built from supervised trio actors."""
