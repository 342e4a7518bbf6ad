"""Spoken twins of any lm-eval task: `lm-eval-audio speak` writes them (`configs`, `cli`), and
`speech` gives each document its clip when a twin runs."""
