"""Layer 1, the model: the IR (architecture, weights, the NumPy reference), weights file I/O, the artifact
catalog, FER2013 and the calibration sample. Imports only the base modules (errors, atomic, util)."""
