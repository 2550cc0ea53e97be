"""Operator tooling: `python -m ops --help`. Never deployed with the function app."""
