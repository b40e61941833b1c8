"""``python -m sapiens_kit.hub CKPT ORG/NAME``: push a checkpoint with a model card."""

from sapiens_kit.hub.upload import main

if __name__ == "__main__":
    main()
