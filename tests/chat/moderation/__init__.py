"""Tests for chorusline.chat.moderation."""
