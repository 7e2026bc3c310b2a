"""`make bench`: speed and memory of the pack against stock ComfyUI, measured as ratios in one run."""
