"""Errors: the spec's grouping rules, recording one error once, and the exception handlers installed into apps."""
