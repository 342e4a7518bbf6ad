"""lm-eval filters of this package, one module per filter family; registered lazily (registration.py)."""
