"""lm-eval model classes. Import the submodules directly; lm-eval resolves them lazily."""
