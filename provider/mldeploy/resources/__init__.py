"""The dynamic resources: one file each, read top to bottom."""
