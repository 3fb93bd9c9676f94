"""Trusted re-execution of submitted method code: the only source of leaderboard scores.

The method runs in a child process (its own working directory holding only label-free inputs, a
scrubbed environment, resource limits, no network, Python audit hooks); the trusted parent scores its
predictions. Uses the testbed; the server calls in here.
"""
