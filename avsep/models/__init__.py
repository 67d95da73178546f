"""Separation networks."""
