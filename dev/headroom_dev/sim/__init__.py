"""Quota simulation: a discrete-event model of a pool of accounts and a stream of sessions,
driven by the operator's own decision core (docs/simulation.md)."""
