"""``face-model``: build the derived face model and print its path, version and identity;
``--migrate`` rewrites older checkpoints' record of the model (a byte hash) as that identity.
"""
from __future__ import annotations


def face_model_command(args) -> int:
    from workers import face_model

    path = face_model.build()
    model = face_model.load(str(path))
    print(f"path: {path}\nversion: {model.version}\nsha256: {model.sha256}")
    for ckpt in args.migrate or ():
        from workers import checkpoint

        changed = checkpoint.migrate(ckpt)
        print(f"{'migrated' if changed else 'up to date'}: {ckpt}")
    return 0
