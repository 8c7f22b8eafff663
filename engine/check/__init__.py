"""Stage 2: semantic checks of built content, one function per check (the table is semantic.CHECKS)."""
