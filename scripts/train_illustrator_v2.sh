#!/bin/sh
# Train the v2 illustrator on one CPU thread: the autoencoder, then the latent U-Net on its latents.
# Rerun it to continue: each stage resumes exactly from its last checkpoint (train_state.pt), and a
# finished stage returns at once. Needs the data set: python scripts/build_iconify_dataset.py
set -e
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
cd "$(dirname "$0")/.."
TALELOOM=${TALELOOM:-taleloom}
stage() {  # recipe out_dir
    if [ -f "$2/train_state.pt" ]; then resume=--resume; else resume=; fi
    "$TALELOOM" engine train "$1" $resume --quiet --json
}
stage scripts/recipes/illustrator_v2_vae.toml runs/v2-vae
stage scripts/recipes/illustrator_v2_unet.toml runs/v2-unet
