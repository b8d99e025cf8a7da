"""Tests of geonorm.models."""
