"""Research code that uses the library but is not (yet) a baseline: see experimental/README.md."""
