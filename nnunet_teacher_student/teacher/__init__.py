"""The box-guided teacher: its training dataset, inference, the guard, the classical (non-learnt) teacher."""
