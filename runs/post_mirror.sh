#!/bin/bash
# Mirror averaging (workers/mirror.py): refit the emotion classifier on the averaged eta, then evaluate.
cd /work/main
date
.venv/bin/python -m workers.training.emotion --checkpoint workers/weights/facestream-mb05 \
    --out docs/emotion.json --confusion docs/img/emotion_confusion.png > runs/emotion_mirror.log 2>&1
echo EMOTION DONE $?
date
.venv/bin/facestream evaluate --checkpoint workers/weights/facestream-mb05 --teacher-on-renders --into-checkpoint \
    --out docs/accuracy.json --plot lp_d11.mp4 docs/img/heldout_lp_d11.png > runs/eval_mirror.log 2>&1
echo EVAL DONE $?
date
