"""`guideline check`: exhaustive three-valued proofs over every patient (conflicts, gaps, dead content)."""
