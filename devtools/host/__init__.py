"""Where ComfyUI comes from, making it importable, its server, and workflows in its API format."""
