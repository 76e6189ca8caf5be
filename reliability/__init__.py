"""The crash and load harness of burrowd (``python -m reliability``); see ``__main__``."""
