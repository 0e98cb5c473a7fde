"""Synthetic chest CT phantoms: anatomy, tumours, and the datasets written from them."""
