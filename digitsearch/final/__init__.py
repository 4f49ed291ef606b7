"""After the search: retrain on train+val, self-describing model files, TorchScript/ONNX
exports, and predicting. Imports core and store, never search (and so never Ray)."""
