"""Planning: a pure function of the desired and the live state, the matching of live resources by
their marks, fingerprints and saved plans."""
