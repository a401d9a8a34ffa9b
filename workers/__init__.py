"""The models: networks, face model, checkpoints, detector and regressor replicas, training."""
