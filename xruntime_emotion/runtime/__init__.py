"""Layer 2, the embeddable runtime: the classifier, preprocessing, the backends and the one door that
opens them, the probe for untrusted files, model-file inspection, face detection. Never TensorFlow."""
