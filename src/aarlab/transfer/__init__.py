"""The transfer gate: does a method's lab gain hold on other tasks and other model pairs?

Uses the testbed (and only the testbed). Settings are registered (hashed and stored) before a run, and
the verdict is stored with them, so nobody can pick the suites after seeing the numbers.
"""
