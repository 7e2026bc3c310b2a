"""Recording and reading the cross-attention of chosen prompt words."""
