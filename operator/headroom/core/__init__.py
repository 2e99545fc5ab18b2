"""Headroom's decision core: pure functions and value types, no I/O, no clock of its own.

Everything here takes `now` as an argument and returns decisions as data, so the operator,
the tests and the quota simulator all drive the very same logic.
"""
