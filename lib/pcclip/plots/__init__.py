"""Figure functions: take data, return a matplotlib Figure of fixed size; notebooks save and show them."""
