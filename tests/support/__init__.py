"""Test harness shared by the tests and tests/bench: the detection scene suite
(`scenes`), its scoring (`evaluate`) and where the real footage lies (`footage`).

Kept out of the motionwatch package: a user's install does not need it. pytest
finds it because tests/ is on sys.path (the rootdir conftest); bench scripts put
tests/ on sys.path themselves.
"""
