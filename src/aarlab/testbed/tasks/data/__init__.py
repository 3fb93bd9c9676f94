"""Task data shipped with aarlab (labelled: hidden from agents and forbidden in the sandbox)."""
