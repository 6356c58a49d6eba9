"""Vouch."""
