"""Layer 3, the checking tools: the int8 rule, the golden set, `verify`, `evaluate` and `bench`."""
