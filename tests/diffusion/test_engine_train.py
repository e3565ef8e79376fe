"""Training: overfitting, exact resume, NaN stop, checkpoints, seeds, loss weighting, datasets, pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from engine_helpers import TinyImages, randomized, tiny_checkpoint, tiny_unet_config
from PIL import Image

import taleloom.diffusion.train as train_mod
from taleloom.diffusion.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)
from taleloom.diffusion.data import CaptionedImageFolder, load_all
from taleloom.diffusion.pipeline import TextToImage
from taleloom.diffusion.schedule import make_schedule, snr
from taleloom.diffusion.train import (
    TrainConfig,
    TrainingDivergedError,
    batch_indices,
    loss_weights,
    lr_at,
    train,
)
from taleloom.diffusion.unet import UNet
from taleloom.errors import BadInputError, ModelNotFoundError


def small_config(out, **kw) -> TrainConfig:
    base = dict(out_dir=str(out), unet=tiny_unet_config(8, dropout=0.1), batch_size=3, max_steps=7, lr=1e-3,
                warmup_steps=2, checkpoint_every=3, log_every=2, cond_drop_prob=0.3)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def test_tiny_unet_overfits_eight_images(tmp_path):
    cfg = TrainConfig(
        out_dir=str(tmp_path), unet=tiny_unet_config(8), batch_size=8, max_steps=80,
        lr=3e-3, warmup_steps=10, prediction_type="eps", min_snr_gamma=0, cond_drop_prob=0.0, ema_decay=0,
        checkpoint_every=1000, log_every=50,
    )  # fmt: skip
    losses = train(cfg, TinyImages(8, 8), progress=False).losses
    start, end = np.mean(losses[:10]), np.mean(losses[-20:])
    assert len(losses) == 80 and start > 0.7
    assert end < 0.5 * start, (start, end)


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(tmp_path):
    data = TinyImages(5, 8)
    full = train(small_config(tmp_path / "full"), data, progress=False)
    first = train(small_config(tmp_path / "split", max_steps=4), data, progress=False)
    second = train(small_config(tmp_path / "split"), data, resume=True, progress=False)
    assert second.start_step == 4 and second.step == 7
    assert first.losses + second.losses == full.losses  # bit-identical trajectory
    a, _ = load_checkpoint(tmp_path / "full")
    b, meta = load_checkpoint(tmp_path / "split")
    assert meta["step"] == 7
    for (k, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), k


def test_init_from_starts_a_new_run_at_the_saved_weights(tmp_path):
    data = TinyImages(5, 8)
    train(small_config(tmp_path / "first"), data, progress=False)
    saved, _ = load_checkpoint(tmp_path / "first")
    zero_lr = small_config(tmp_path / "ft", init_from=str(tmp_path / "first"), lr=0.0, max_steps=2)
    result = train(zero_lr, data, progress=False)
    assert result.start_step == 0 and result.step == 2
    tuned, _ = load_checkpoint(tmp_path / "ft")  # lr 0: the weights (and their EMA) are the saved ones
    for (k, p), q in zip(saved.state_dict().items(), tuned.state_dict().values(), strict=True):
        assert torch.equal(p, q), k
    fresh = train(small_config(tmp_path / "fresh", lr=0.0, max_steps=2), data, progress=False)
    assert result.losses != fresh.losses  # the saved weights, not a new initialisation, did the work
    other = small_config(tmp_path / "bad", init_from=str(tmp_path / "first"), unet=tiny_unet_config(8, base_channels=8))
    with pytest.raises(BadInputError, match="U-Net config differs"):
        train(other, data, progress=False)
    first_steps = read_meta(tmp_path / "first")["step"]
    assert read_meta(tmp_path / "ft")["init_from_step"] == first_steps  # kept with the run: the source may change
    (tmp_path / "first" / "config.json").write_text("{}")  # e.g. exported over (scripts/export_assets.py)
    resumed = train(small_config(tmp_path / "ft", init_from=str(tmp_path / "first"), lr=0.0, max_steps=3), data,
                    progress=False, resume=True)
    assert resumed.step == 3 and read_meta(tmp_path / "ft")["init_from_step"] == first_steps
    # a sidecar saved before it kept the step (as the shipped phase 2's was): the run's config.json still knows it,
    # while the init_from folder now holds an exported later model (here: claims step 999)
    state_path = tmp_path / "ft" / "train_state.pt"
    state = torch.load(state_path, weights_only=False)
    state.pop("init_from_step", None)
    torch.save(state, state_path)
    (tmp_path / "first" / "config.json").write_text(json.dumps({"step": 999}))
    again = train(small_config(tmp_path / "ft", init_from=str(tmp_path / "first"), lr=0.0, max_steps=4), data,
                  progress=False, resume=True)
    assert again.step == 4 and read_meta(tmp_path / "ft")["init_from_step"] == first_steps
    # a third phase started from the second's run folder counts both earlier phases (phase 3 of the shipped
    # U-Net was labelled 39,000 steps: phase 2's own 31,000 + 8,000, without phase 1's 2,300)
    third = train(small_config(tmp_path / "third", init_from=str(tmp_path / "ft"), lr=0.0, max_steps=1), data,
                  progress=False)
    assert third.step == 1 and read_meta(tmp_path / "third")["init_from_step"] == first_steps + 4


def test_resume_needs_a_saved_run_and_warns_when_the_trajectory_changes(tmp_path):
    data = TinyImages(3, 8)
    with pytest.raises(BadInputError, match="no training run to resume"):
        train(small_config(tmp_path / "typo", max_steps=1), data, resume=True, progress=False)
    train(small_config(tmp_path / "run", max_steps=3), data, progress=False)
    with pytest.warns(UserWarning, match=r"changed training settings \(lr\)"):
        train(small_config(tmp_path / "run", max_steps=4, lr=5e-4), data, resume=True, progress=False)


def test_raising_max_steps_under_a_cosine_schedule_is_a_changed_trajectory(tmp_path):
    """Cosine decay is stretched over max_steps: raising it on resume changes every later step's learning
    rate, so the resume is warned about and logged, unlike under a constant learning rate."""
    data = TinyImages(3, 8)
    train(small_config(tmp_path / "cos", max_steps=3, lr_schedule="cosine"), data, progress=False)
    with pytest.warns(UserWarning, match=r"changed training settings \(max_steps\)"):
        train(small_config(tmp_path / "cos", max_steps=5, lr_schedule="cosine"), data, resume=True, progress=False)
    events = [json.loads(line) for line in (tmp_path / "cos" / "train_log.jsonl").read_text().splitlines()]
    assert {"step": 3, "event": "resumed with changed settings", "changed": {"max_steps": [3, 5]}} in events


def test_a_device_this_machine_lacks_is_named(tmp_path):
    with pytest.raises(BadInputError, match="'bogus' is not a torch device"):
        train(small_config(tmp_path, device="bogus"), TinyImages(2, 8), progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(BadInputError, match="CUDA is not available"):
            TextToImage(tiny_checkpoint(), device="cuda")


def test_weights_that_do_not_fit_their_config_give_one_line(tmp_path):
    src = tiny_checkpoint()
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    meta = json.loads((tmp_path / CONFIG_NAME).read_text())
    meta["unet"]["base_channels"] = 8
    (tmp_path / CONFIG_NAME).write_text(json.dumps(meta))
    with pytest.raises(ModelNotFoundError) as e:
        load_checkpoint(tmp_path)
    assert "size mismatch" in e.value.message and "\n" not in e.value.message and len(e.value.message) < 500


def test_existing_run_is_not_overwritten_without_resume(tmp_path):
    data = TinyImages(3, 8)
    train(small_config(tmp_path, max_steps=1), data, progress=False)
    with pytest.raises(BadInputError, match="--resume"):
        train(small_config(tmp_path, max_steps=1), data, progress=False)
    assert train(small_config(tmp_path, max_steps=1), data, overwrite=True, progress=False).step == 1


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_q_sample = train_mod.q_sample

    def poisoned(schedule, x0, t, noise=None):
        calls["n"] += 1
        x = real_q_sample(schedule, x0, t, noise)
        return x * float("nan") if calls["n"] == 5 else x

    monkeypatch.setattr(train_mod, "q_sample", poisoned)
    cfg = small_config(tmp_path, checkpoint_every=2, log_every=1, max_steps=10)
    with pytest.raises(TrainingDivergedError, match=r"nan at step 5.*step 4"):
        train(cfg, TinyImages(4, 8), progress=False)
    model, meta = load_checkpoint(tmp_path)
    assert meta["step"] == 4
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    cfg = tiny_unet_config(8, cond_channels=3)
    model = randomized(UNet(cfg)).eval()
    save_checkpoint(tmp_path, model.state_dict(), {"unet": cfg.to_dict(), "schedule": "cosine", "timesteps": 1000,
                                                   "prediction_type": "v", "step": 0})  # fmt: skip
    loaded, meta = load_checkpoint(tmp_path / WEIGHTS_NAME)
    assert meta["format_version"] == 1 and loaded.config == cfg
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([10, 900])
    ctx, mask = model.null_context(2)
    with torch.no_grad():
        assert torch.equal(model(x, t, ctx, mask, x), loaded(x, t, ctx, mask, x))


def test_missing_foreign_or_corrupted_checkpoint_names_the_path(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no diffusion checkpoint at .*nowhere"):
        load_checkpoint(tmp_path / "nowhere")
    ckpt = tiny_checkpoint()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / CONFIG_NAME).write_text((ckpt / CONFIG_NAME).read_text())
    (bad / WEIGHTS_NAME).write_bytes(b"not a safetensors file")
    with pytest.raises(ModelNotFoundError, match="corrupted") as e:
        load_checkpoint(bad)
    assert "taleloom engine train" in str(e.value)
    (bad / CONFIG_NAME).write_text("{broken")
    with pytest.raises(ModelNotFoundError, match="corrupted"):
        load_checkpoint(bad)
    meta = json.loads((ckpt / CONFIG_NAME).read_text())
    (bad / CONFIG_NAME).write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ModelNotFoundError, match="format_version 99"):
        load_checkpoint(bad)


def test_same_seed_gives_bit_identical_pictures():
    pipe = TextToImage(tiny_checkpoint())
    for sampler in ("ddpm", "ddim", "dpmpp_2m"):
        a = pipe.generate(["a cat", "a dog"], sampler=sampler, steps=4, seeds=[3, 4])
        b = pipe.generate(["a cat", "a dog"], sampler=sampler, steps=4, seeds=[3, 4])
        assert [np.asarray(i).tobytes() for i in a] == [np.asarray(i).tobytes() for i in b]
        assert a[0].size == (16, 16) and a[0].mode == "RGB"
    c = pipe.generate(["a cat", "a dog"], sampler="ddim", steps=4, seeds=[3, 5])
    d = pipe.generate(["a cat", "a dog"], sampler="ddim", steps=4, seeds=[3, 4])
    assert not np.array_equal(np.asarray(c[1]), np.asarray(d[1]))  # another seed, another picture


def test_pipeline_rejects_bad_input():
    pipe = TextToImage(tiny_checkpoint())
    with pytest.raises(BadInputError, match="unknown sampler 'euler'"):
        pipe.generate("a cat", sampler="euler")
    with pytest.raises(BadInputError, match="steps"):
        pipe.generate("a cat", steps=0)
    with pytest.raises(BadInputError, match="guidance"):
        pipe.generate("a cat", guidance=-0.5)
    with pytest.raises(BadInputError, match="2 seeds for 3 prompts"):
        pipe.generate(["a", "b", "c"], seeds=[1, 2])
    with pytest.raises(BadInputError, match="takes no conditioning image"):
        pipe.generate("a cat", cond_image=Image.new("RGB", (8, 8)))


def test_super_resolution_checkpoint_takes_the_low_res_picture():
    pipe = TextToImage(tiny_checkpoint("sr"))
    low = Image.new("RGB", (8, 8), (200, 30, 30))
    (out,) = pipe.generate("red circle", steps=3, seeds=[0], cond_image=low)
    assert out.size == (16, 16)
    with pytest.raises(BadInputError, match="super-resolution"):
        pipe.generate("red circle", steps=3)
    with pytest.raises(BadInputError, match="mode 'CMYK'"):
        pipe.generate("red circle", steps=3, cond_image=Image.new("CMYK", (8, 8)))


def test_loss_weights_are_min_snr_gamma():
    sched = make_schedule("cosine", 1000)
    s = snr(sched, torch.arange(1000))
    w_eps = loss_weights(TrainConfig(prediction_type="eps", min_snr_gamma=5), sched)
    w_v = loss_weights(TrainConfig(prediction_type="v", min_snr_gamma=5), sched)
    torch.testing.assert_close(w_eps, s.clamp(max=5) / s)
    torch.testing.assert_close(w_v, s.clamp(max=5) / (s + 1))
    assert w_eps[0] < 0.01 and w_eps[-1] == 1  # low noise (huge SNR) is down-weighted
    assert (loss_weights(TrainConfig(min_snr_gamma=0), sched) == 1).all()


def test_data_order_and_learning_rate():
    seen = torch.cat([batch_indices(s, 4, 10, seed=1) for s in range(5)])  # two epochs of 10
    assert sorted(seen[:10].tolist()) == list(range(10)) and sorted(seen[10:].tolist()) == list(range(10))
    assert torch.equal(batch_indices(3, 4, 10, seed=1), batch_indices(3, 4, 10, seed=1))
    assert not torch.equal(batch_indices(0, 4, 10, seed=1), batch_indices(0, 4, 10, seed=2))
    assert len(batch_indices(0, 8, 3, seed=0)) == 8  # batches larger than the dataset wrap around
    cfg = TrainConfig(lr=1.0, warmup_steps=4, max_steps=14, lr_schedule="cosine", min_lr_ratio=0.1)
    assert [lr_at(cfg, s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(cfg, 14) == pytest.approx(0.1)


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="prediction_type"):
        TrainConfig(prediction_type="x0")
    with pytest.raises(ValueError, match="unknown TrainConfig field.*lr_warmup"):
        TrainConfig.from_dict({"lr_warmup": 3})
    with pytest.raises(BadInputError, match="expects"):
        train(small_config(tmp_path), TinyImages(3, 16), progress=False)  # 16px data for an 8px U-Net
    with pytest.raises(BadInputError, match="cond_channels"):
        train(small_config(tmp_path), TinyImages(3, 8, low_res=4), progress=False)


def test_captioned_folder_composites_transparency_on_white(tmp_path):
    im = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    im.paste((255, 0, 0, 255), (8, 2, 12, 8))
    im.save(tmp_path / "a.png")
    Image.new("L", (12, 12), 0).save(tmp_path / "b.png")
    (tmp_path / "captions.jsonl").write_text(
        '{"file": "a.png", "caption": "red bar"}\n\n{"file": "b.png", "caption": "black"}\n'
    )
    ds = CaptionedImageFolder(tmp_path, 8, low_res_size=4)
    hi, low, caption = ds[0]
    assert hi.shape == (3, 8, 8) and low.shape == (3, 4, 4) and caption == "red bar"
    assert torch.equal(hi[:, 0, 0], torch.ones(3))  # transparent → white
    assert hi[0, 4, 4] > 0.9 and hi[1, 4, 4] < -0.5  # red stays red
    images, conds, captions = load_all(ds)
    assert images.dtype == torch.uint8 and conds.shape == (2, 3, 4, 4) and captions == ["red bar", "black"]
    assert len(CaptionedImageFolder(tmp_path, 8, limit=1)) == 1
    with pytest.raises(BadInputError, match="no caption manifest"):
        CaptionedImageFolder(tmp_path / "empty", 8)


def test_interpolation_ends_are_the_two_pictures():
    pytest.importorskip("taleloom.diffusion.edit")
    pipe = TextToImage(tiny_checkpoint())
    frames = pipe.interpolate("a cat", "a dog", seed_a=1, seed_b=2, frames=3, sampler="ddim", steps=4)
    ends = pipe.generate(["a cat", "a dog"], seeds=[1, 2], sampler="ddim", steps=4)
    for frame, end in ((frames[0], ends[0]), (frames[-1], ends[1])):
        diff = np.abs(np.asarray(frame, dtype=int) - np.asarray(end, dtype=int))
        assert diff.max() <= 1  # same noise and text; only the batch differs
