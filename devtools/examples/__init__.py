"""The example workflows, their thumbnails and the README's pictures, built from real runs."""
