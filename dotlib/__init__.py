"""dotlib: Deep Optimal Transport for photo-realistic image restoration.

Adrai, Ohayon, Elad, Michaeli, "Deep Optimal Transport: A Practical Algorithm for
Photo-realistic Image Restoration", NeurIPS 2023 (arXiv:2306.02342).
"""

__version__ = "0.1.0"
