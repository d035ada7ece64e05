"""Tiny random-weight models for every pipeline, built offline and cached."""
