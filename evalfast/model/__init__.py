"""Models: export to ONNX, precision variants, onnxruntime sessions, the encoder and its embedding cache."""
