"""Model loading: which causal LMs a server can hold, and how each is built or read."""
