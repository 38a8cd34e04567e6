"""Tests for chorusline.moderation."""
