"""areplicate.testing: an in-process fake Replicate server (being built)."""
