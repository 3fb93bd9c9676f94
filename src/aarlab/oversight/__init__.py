"""Reward-hack oversight: detectors that write flags with evidence for overseers to review.

Uses the testbed (and only the testbed); the server calls in here, never the reverse.
"""
