"""Self-supervised methods and baselines, one file each; losses are pure functions in ``losses``."""
