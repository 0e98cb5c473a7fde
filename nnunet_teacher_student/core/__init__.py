"""Shared foundations: the input error, atomic files and JSON, image geometry, connected components, case sharding."""
