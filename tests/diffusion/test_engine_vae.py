"""Latent diffusion in the engine: the KL autoencoder, its training (exact resume, improving round trip),
the latent U-Net trained on its latents, and the pipeline that decodes them — all at tiny sizes."""

from __future__ import annotations

import json

import pytest
import torch
from engine_helpers import CAPTIONS, tiny_unet_config
from torch.utils.data import Dataset

from taleloom.diffusion.checkpoint import load_checkpoint
from taleloom.diffusion.pipeline import TextToImage
from taleloom.diffusion.recipe import recipe_from_dict, train_recipe
from taleloom.diffusion.train import TrainConfig, mirrored, train
from taleloom.diffusion.vae import AutoencoderKL, VAEConfig, kl_divergence, load_vae
from taleloom.diffusion.vae_train import PerceptualLoss, VAETrainConfig, edge_distance, train_vae
from taleloom.errors import BadInputError, ModelNotFoundError


class Blobs(Dataset):
    """n pictures of one flat-coloured disc on white (a learnable structure, unlike random pixels)."""

    def __init__(self, n: int = 8, size: int = 16, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        self.x = []
        for _ in range(n):
            cy, cx = (torch.rand(2, generator=g) * size * 0.5 + size * 0.25).tolist()
            r = float(torch.rand(1, generator=g)) * size * 0.2 + size * 0.15
            colour = torch.rand(3, generator=g) * 2 - 1
            disc = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).float()
            img = torch.ones(3, size, size) * (1 - disc) + colour[:, None, None] * disc
            self.x.append(((img + 1) * 127.5).round() / 127.5 - 1)  # on the 8-bit grid, as datasets are
        self.captions = [CAPTIONS[i % len(CAPTIONS)] for i in range(n)]

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.captions[i]


def vae_config(out, **kw) -> VAETrainConfig:
    base = dict(out_dir=str(out), vae=VAEConfig(channels=(8, 16), latent_channels=4, image_size=16),
                batch_size=4, crop_size=8, max_steps=7, lr=2e-3, warmup_steps=2, checkpoint_every=3,
                log_every=2, perceptual="none", device="cpu", lr_schedule="constant")
    return VAETrainConfig(**{**base, **kw})


def test_shapes_follow_the_downsampling_factor():
    for channels, f in (((8, 16), 2), ((8, 8, 16, 16), 8)):
        cfg = VAEConfig(channels=channels, latent_channels=4, image_size=32)
        vae = AutoencoderKL(cfg)
        assert cfg.factor == f and cfg.latent_size == 32 // f
        mean, logvar = vae.encode(torch.zeros(2, 3, 32, 32))
        assert mean.shape == logvar.shape == (2, 4, 32 // f, 32 // f)
        assert vae.decode(mean).shape == (2, 3, 32, 32)
        assert vae.encode(torch.zeros(1, 3, 64, 64))[0].shape == (1, 4, 64 // f, 64 // f)  # convolutional
    with pytest.raises(ValueError, match="divisible"):
        VAEConfig(channels=(8, 8, 8, 8), image_size=20)


def test_kl_term_is_the_gaussian_kl_to_the_prior():
    zero = torch.zeros(2, 4, 3, 3)
    assert torch.equal(kl_divergence(zero, zero), torch.zeros(2))  # the prior itself
    mean, logvar = torch.full((1, 4, 2, 2), 2.0), torch.full((1, 4, 2, 2), -1.0)
    expected = 0.5 * (4.0 + torch.exp(torch.tensor(-1.0)) - 1.0 + 1.0)  # ½(μ² + σ² − 1 − log σ²)
    assert torch.allclose(kl_divergence(mean, logvar), expected.expand(1))


def test_perceptual_term_compares_features_not_pixels():
    cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.SiLU(), torch.nn.AvgPool2d(2),
                              torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.SiLU(), torch.nn.AvgPool2d(2))
    loss = PerceptualLoss(cnn, levels=2)
    x, y = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    assert torch.equal(loss(x, x), torch.zeros(2)) and (loss(x, y) > 0).all()
    assert not any(p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.training  # stays frozen inside a training model


def test_round_trip_improves_with_training(tmp_path):
    data = Blobs(8, 16)
    x = torch.stack(data.x)
    torch.manual_seed(0)
    fresh = AutoencoderKL(vae_config(tmp_path).vae).eval()
    with torch.no_grad():
        before = (fresh.decode(fresh.encode(x)[0]) - x).abs().mean().item()
    train_vae(vae_config(tmp_path, max_steps=150, crop_size=0, batch_size=8, checkpoint_every=150, lr=5e-3),
              data, progress=False)
    vae, meta = load_vae(tmp_path)
    with torch.no_grad():
        after = (vae.decode(vae.encode(x)[0]) - x).abs().mean().item()
    assert meta["kind"] == "vae" and meta["step"] == 150 and meta["format_version"] == 1
    assert meta["vae"]["channels"] == [8, 16] and meta["train"]["crop_size"] == 0  # describes itself
    assert after < 0.5 * before, (before, after)


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(tmp_path):
    data = Blobs(6, 16)
    full = train_vae(vae_config(tmp_path / "full"), data, progress=False)
    first = train_vae(vae_config(tmp_path / "split", max_steps=4), data, progress=False)
    second = train_vae(vae_config(tmp_path / "split"), data, resume=True, progress=False)
    assert second.start_step == 4 and second.step == 7
    assert first.losses + second.losses == full.losses  # crops, sampling noise, optimizer: bit-identical
    a, _ = load_vae(tmp_path / "full")
    b, _ = load_vae(tmp_path / "split")
    for (k, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), k
    with pytest.raises(BadInputError, match="already holds a training run"):
        train_vae(vae_config(tmp_path / "full"), data, progress=False)
    with pytest.raises(BadInputError, match="differs"):
        train_vae(vae_config(tmp_path / "full", max_steps=9, vae=VAEConfig(channels=(8, 8), image_size=16)),
                  data, resume=True, progress=False)


def test_a_wider_decoder_learns_on_a_frozen_encoder_and_the_latents_do_not_move(tmp_path):
    data = Blobs(8, 16)
    x = torch.stack(data.x)
    train_vae(vae_config(tmp_path / "first", max_steps=60, crop_size=0, batch_size=8, lr=5e-3), data, progress=False)
    first, _ = load_vae(tmp_path / "first")
    wide = VAEConfig(channels=(8, 16), latent_channels=4, image_size=16, decoder_channels=(16, 24),
                     decoder_res_blocks=2)
    run = vae_config(tmp_path / "wide", vae=wide, init_from=str(tmp_path / "first"), decoder_only=True,
                     max_steps=80, crop_size=0, batch_size=8, lr=5e-3)
    losses = train_vae(run, data, progress=False).losses
    second, meta = load_vae(tmp_path / "wide")
    with torch.no_grad():
        z = first.encode(x)[0]
        assert torch.equal(second.encode(x)[0], z)  # same encoder, same latents: a U-Net trained on them still fits
        assert sum(p.numel() for p in second.decoder.parameters()) > 2 * sum(p.numel() for p in first.decoder.parameters())
        assert (second.decode(z) - x).abs().mean() < (first.decode(z) - x).abs().mean()
    assert sum(losses[-10:]) < sum(losses[:10])
    assert meta["vae"]["decoder_channels"] == [16, 24] and meta["train"]["decoder_only"] is True
    with pytest.raises(ValueError, match="init_from"):
        vae_config(tmp_path / "x", decoder_only=True)
    with pytest.raises(BadInputError, match="encoder does not fit"):
        train_vae(vae_config(tmp_path / "y", vae=VAEConfig(channels=(8, 8), image_size=16),
                             init_from=str(tmp_path / "first"), decoder_only=True), data, progress=False)
    with pytest.raises(ValueError, match="decoder_channels"):
        VAEConfig(channels=(8, 16), decoder_channels=(8,))


def test_the_adversarial_term_trains_a_discriminator_and_resumes_exactly(tmp_path):
    data = Blobs(6, 16)
    adv = dict(adversarial_weight=0.1, adversarial_start=3, disc_channels=4, crop_size=0)
    full = train_vae(vae_config(tmp_path / "full", **adv), data, progress=False)
    train_vae(vae_config(tmp_path / "split", max_steps=4, **adv), data, progress=False)
    second = train_vae(vae_config(tmp_path / "split", **adv), data, resume=True, progress=False)
    assert second.losses == full.losses[4:]  # discriminator, its optimizer and its spectral norms saved too
    log = [json.loads(line) for line in (tmp_path / "full" / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["adversarial"] == 0.0 and log[0]["discriminator"] > 0  # the critic learns before the decoder feels it
    assert log[-1]["adversarial"] != 0.0
    plain = train_vae(vae_config(tmp_path / "plain", crop_size=0), data, progress=False)
    assert plain.losses[:3] == full.losses[:3] and plain.losses[3:] != full.losses[3:]
    with pytest.raises(ValueError, match="adversarial"):
        vae_config(tmp_path / "bad", adversarial_weight=-1)


def test_checkpoint_kinds_are_not_mixed_up(tmp_path):
    train_vae(vae_config(tmp_path / "vae", max_steps=1), Blobs(4, 16), progress=False)
    with pytest.raises(ModelNotFoundError, match="autoencoder checkpoint"):
        load_checkpoint(tmp_path / "vae")
    with pytest.raises(ModelNotFoundError, match="no diffusion checkpoint|does not exist|no autoencoder|no config"):
        load_vae(tmp_path / "nowhere")


@pytest.fixture(scope="module")
def latent_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("latent")
    data = Blobs(6, 16)
    train_vae(vae_config(root / "vae", max_steps=20), data, progress=False)
    cfg = TrainConfig(out_dir=str(root / "unet"), unet=tiny_unet_config(8, in_channels=4, out_channels=4),
                      batch_size=3, max_steps=4, warmup_steps=1, checkpoint_every=2, log_every=2,
                      vae=str(root / "vae"), cache_dir=str(root / "text"))
    result = train(cfg, data, progress=False)
    return root, cfg, data, result


def test_latent_unet_trains_on_scaled_latents_and_the_pipeline_decodes(latent_model, tmp_path):
    root, cfg, data, result = latent_model
    model, meta = load_checkpoint(root / "unet")
    lat = meta["latent"]
    assert lat["factor"] == 2 and lat["image_size"] == 16 and lat["scale"] > 0 and lat["vae_step"] == 20
    assert (root / "unet" / "vae" / "model.safetensors").is_file()  # the folder stands alone
    pipe = TextToImage(root / "unet")
    assert pipe.image_size == 16 and pipe.config.image_size == 8
    a = pipe.generate(["a cat", "a dog"], steps=3, seeds=[1, 2])
    b = pipe.generate(["a cat"], steps=3, seeds=[1])
    assert [im.size for im in a] == [(16, 16), (16, 16)]
    assert a[0].tobytes() == b[0].tobytes()  # decoded pictures are reproducible per seed
    redrawn = pipe.img2img("a dog", a[0], strength=0.5, steps=4, seed=3)
    assert redrawn.size == (16, 16)
    # resume continues exactly on the cached latents
    split = TrainConfig(**{**cfg.__dict__, "out_dir": str(tmp_path / "split"), "max_steps": 2})
    first = train(split, data, progress=False)
    split.max_steps = 4
    second = train(split, data, resume=True, progress=False)
    assert first.losses + second.losses == result.losses


def test_mirrored_pictures_are_encoded_as_new_pictures_and_marked_ones_stay_as_drawn(latent_model, tmp_path):
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.uint8).reshape(2, 3, 2, 2)
    images, conds, captions = mirrored(x, x + 1, ["a cat", "a Stop sign"], keep=("sign",))
    assert captions == ["a cat", "a Stop sign", "a cat"]  # the sign's writing would read backwards
    assert torch.equal(images[2], x[0].flip(-1)) and torch.equal(conds[2], x[0].flip(-1) + 1)
    root, cfg, data, _ = latent_model
    run = TrainConfig(**{**cfg.__dict__, "out_dir": str(tmp_path / "mirror"), "max_steps": 2, "hflip": True})
    train(run, data, progress=False)
    cached = list((tmp_path / "mirror" / "cache").glob("latents_*.pt"))
    assert len(cached) == 1
    z = torch.load(cached[0], weights_only=True)
    assert z.shape[0] == 2 * len(data)  # every picture and its mirror image
    assert not torch.allclose(z[len(data):], z[:len(data)].flip(-1), atol=1e-3)  # encoded, not mirrored latents
    with pytest.raises(ValueError, match="hflip"):
        TrainConfig.from_dict({"hflip_typo": True})


def test_recipe_section_selects_autoencoder_or_latent_unet(tmp_path):
    folder = tmp_path / "data"
    (folder).mkdir()
    from PIL import Image

    with (folder / "captions.jsonl").open("w") as f:
        for i in range(4):
            Image.new("RGB", (16, 16), (40 * i, 200, 90)).save(folder / f"{i}.png")
            f.write(json.dumps({"file": f"{i}.png", "caption": CAPTIONS[i]}) + "\n")
    vae_recipe = recipe_from_dict({
        "data": {"path": str(folder)},
        "vae": {"channels": [8, 16], "image_size": 16},
        "train": {"out_dir": str(tmp_path / "vae"), "batch_size": 2, "max_steps": 2, "crop_size": 8,
                  "perceptual": "none", "device": "cpu"}})
    assert isinstance(vae_recipe.train, VAETrainConfig) and vae_recipe.image_size == 16
    assert train_recipe(vae_recipe, progress=False).step == 2
    unet_recipe = recipe_from_dict({
        "data": {"path": str(folder)},
        "unet": {**tiny_unet_config(8, in_channels=4, out_channels=4).to_dict()},
        "train": {"out_dir": str(tmp_path / "unet"), "vae": str(tmp_path / "vae"), "batch_size": 2,
                  "max_steps": 1, "cache_dir": str(tmp_path / "text")}})
    assert unet_recipe.image_size == 16  # read at the autoencoder's picture size, not the latent size
    assert train_recipe(unet_recipe, progress=False).step == 1
    with pytest.raises(BadInputError, match="either a U-Net"):
        recipe_from_dict({"unet": {}, "vae": {}})
    with pytest.raises(BadInputError, match="perceptual"):
        recipe_from_dict({"vae": {}, "train": {"perceptual": "vgg"}})


def test_the_edge_term_ranks_a_blurred_edge_worse_than_a_colour_shift_unlike_the_pixel_l1_and_is_logged(tmp_path):
    sharp = -torch.ones(1, 3, 16, 16)
    sharp[..., 8:] = 1.0  # one vertical edge
    blurred = sharp.clone()
    blurred[..., 7], blurred[..., 8] = -1 / 3, 1 / 3  # the same edge spread over 3 pixels
    shifted = sharp + 0.2  # a colour shift, no change of shape
    assert (blurred - sharp).abs().mean() < (shifted - sharp).abs().mean()  # the pixel L1 prefers the blur
    assert edge_distance(shifted, sharp).item() == pytest.approx(0.0, abs=1e-6)
    assert edge_distance(blurred, sharp).item() > 0.05
    run = vae_config(tmp_path / "edge", edge_weight=1.0, max_steps=6, crop_size=0)
    train_vae(run, Blobs(6, 16), progress=False)
    logged = [json.loads(line) for line in (tmp_path / "edge" / "train_log.jsonl").read_text().splitlines()]
    assert all(row["edge"] > 0 for row in logged)
    with pytest.raises(ValueError, match="edge_weight"):
        vae_config(tmp_path / "x", edge_weight=-1.0)


def test_a_decoder_told_each_pictures_class_starts_as_the_one_it_came_from_learns_per_class_and_reads_the_prompt(
        tmp_path):
    """decoder_classes: a picture's class is the class text its caption ends with (class 0: none); the new FiLM
    layers start at zero, so the decoder begins as the one it is initialised from; trained, the same latent
    decodes differently per class, and a latent model's codec finds the class from each picture's prompt."""
    from taleloom.diffusion.latent import LatentCodec
    from taleloom.diffusion.vae_train import start_from

    data = Blobs(8, 16)
    data.captions = [f"disc {i}, {'flat style' if i % 2 else 'ink style'}" for i in range(8)]
    train_vae(vae_config(tmp_path / "plain", max_steps=30, crop_size=0, batch_size=8, lr=5e-3), data, progress=False)
    plain, _ = load_vae(tmp_path / "plain")
    styled = VAEConfig(channels=(8, 16), latent_channels=4, image_size=16, decoder_classes=("flat style", "ink style"),
                       decoder_class_dim=8)
    assert [styled.class_index(c) for c in ("disc, flat style", "disc, ink style ", "a disc", "flat style, disc")] == \
        [1, 2, 0, 0]
    fresh = AutoencoderKL(styled)
    start_from(fresh, str(tmp_path / "plain"))
    z = plain.encode(torch.stack(data.x))[0].detach()
    with torch.no_grad():
        assert torch.equal(fresh.decode(z, torch.tensor([1] * 8)), plain.decode(z))  # step 0: the decoder it came from
    run = vae_config(tmp_path / "styled", vae=styled, init_from=str(tmp_path / "plain"), decoder_only=True,
                     max_steps=40, crop_size=0, batch_size=8, lr=5e-3, class_dropout=0.25)
    losses = train_vae(run, data, progress=False).losses
    assert sum(losses[-10:]) < sum(losses[:10])
    trained, meta = load_vae(tmp_path / "styled")
    assert meta["vae"]["decoder_classes"] == ["flat style", "ink style"]
    with torch.no_grad():
        flat, ink, none = (trained.decode(z, torch.full((8,), c)) for c in (1, 2, 0))
        assert (flat - ink).abs().mean() > 1e-3 and (flat - none).abs().mean() > 1e-3
        assert torch.equal(trained.decode(z), none)  # no class given: class 0
    codec = LatentCodec.__new__(LatentCodec)
    codec.vae, codec.scale = trained, 1.0
    with torch.no_grad():
        assert torch.allclose(codec.decode(z[:2], ["disc, ink style", "a disc"]),
                              torch.cat([ink[:1], none[1:2]]).clamp(-1, 1), atol=1e-5)
    with pytest.raises(BadInputError, match="decoder_classes"):
        train_vae(vae_config(tmp_path / "none", vae=VAEConfig(channels=(8, 16), image_size=16, decoder_classes=("x",))),
                  data, progress=False)
    with pytest.raises(ValueError, match="distinct"):
        VAEConfig(channels=(8, 16), decoder_classes=("a", "a"))


def test_the_style_decoder_recipe_lists_the_trained_styles_words_in_their_order():
    """One home for the style words (styles.py): the recipe's decoder_classes must be exactly them, since the
    sampler finds a picture's class from the prompt styles.caption() wrote."""
    import tomllib
    from pathlib import Path

    from taleloom.backends.image.styles import STYLES

    recipe = Path(__file__).resolve().parents[2] / "scripts" / "recipes" / "illustrator_v2_vae_decoder_styles.toml"
    classes = tomllib.loads(recipe.read_text())["vae"]["decoder_classes"]
    assert classes == [s.words for s in STYLES.values()]
