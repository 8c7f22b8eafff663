"""Mutation testing of a guideline's cases (`guideline test --mutate`, contract section 9)."""
