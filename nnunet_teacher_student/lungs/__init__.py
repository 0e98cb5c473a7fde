"""Lungs: the lung mask (lungmask or classical), the lung region and the crops around it."""
