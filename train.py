"""Train a ContrastGeo model: `python train.py ...` or `accelerate launch train.py ...`.

    python train.py --objective contrastgeo --train-file pool.csv --eval-file query.csv --shots 16 --seed 0 \
        --output-dir runs/k16
    accelerate launch train.py --task vardial-ch --shots 16 --lora --output-dir runs/ch-lora
    python train.py --objective csp --output-dir runs/csp          # CSP pre-training on Wikivoyage bylines
    python train.py --config configs/fewshot.yaml --seed 1         # a run file; flags override it

Objectives: contrastgeo | classifier | csp | location-prior. `python train.py --help` lists every flag; defaults
live in contrastgeo/training/defaults.py. The loop itself is `contrastgeo.training.training_function(config, args)`.
"""

from contrastgeo.training import main

if __name__ == "__main__":
    main()
