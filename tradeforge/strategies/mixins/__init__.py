"""Pluggable strategy parts. Each module holds one kind: entries, exits, sizing, filters, protections."""
