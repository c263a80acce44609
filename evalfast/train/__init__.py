"""Fine-tuning a model on a golden set's training split, and recording what it was trained on."""
