"""Region-aware nnU-Net prediction shared by the teacher and the students."""
