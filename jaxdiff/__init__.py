"""jaxdiff."""
