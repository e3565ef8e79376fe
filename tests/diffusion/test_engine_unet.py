"""U-Net shapes, null condition, padding mask, conditioning image; the real MiniLM text encoder."""

from __future__ import annotations

import pytest
import torch
from engine_helpers import randomized, tiny_unet_config

from taleloom.diffusion.text_encoder import TEXT_DIM, cached_encode, get_text_encoder
from taleloom.diffusion.unet import UNet, UNetConfig, count_parameters, timestep_embedding


def inputs(cfg: UNetConfig, b: int = 3, length: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s = cfg.image_size
    x = torch.randn(b, cfg.in_channels, s, s, generator=g)
    t = torch.randint(0, 1000, (b,), generator=g)
    ctx = torch.randn(b, length, cfg.text_dim, generator=g)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[0, 3:] = False
    mask[1, 5:] = False
    return x, t, ctx, mask


@pytest.mark.parametrize("size,mults,attn", [(8, (1, 2), (4,)), (16, (1, 2, 2), (8, 4)), (16, (1,), (16,))])
def test_output_shape_matches_input(size, mults, attn):
    cfg = tiny_unet_config(size, channel_mults=mults, attention_resolutions=attn)
    model = randomized(UNet(cfg))
    x, t, ctx, mask = inputs(cfg)
    out = model(x, t, ctx, mask)
    assert out.shape == x.shape and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_fresh_model_predicts_zero_and_every_block_starts_as_identity():
    cfg = tiny_unet_config()
    x, t, ctx, mask = inputs(cfg)
    assert UNet(cfg)(x, t, ctx, mask).abs().max() == 0  # zero-initialised output conv


def test_null_context_is_learned_and_usable():
    cfg = tiny_unet_config()
    model = randomized(UNet(cfg))
    ctx, mask = model.null_context(2)
    assert ctx.shape == (2, cfg.max_text_len, cfg.text_dim) and mask.shape == (2, cfg.max_text_len)
    assert mask[:, 0].all() and not mask[:, 1:].any()
    x, t, _, _ = inputs(cfg, b=2)
    model(x, t, ctx, mask).square().mean().backward()
    assert model.null_token.grad is not None and model.null_token.grad.abs().sum() > 0


def test_padding_mask_masks_padded_tokens():
    cfg = tiny_unet_config()
    model = randomized(UNet(cfg)).eval()
    x, t, ctx, mask = inputs(cfg)
    out = model(x, t, ctx, mask)
    changed = ctx.clone()
    changed[~mask] = torch.randn(int((~mask).sum()), cfg.text_dim) * 10  # rubbish in the padding only
    torch.testing.assert_close(model(x, t, changed, mask), out, rtol=0, atol=1e-6)
    # more padding after the prompt changes nothing either
    longer = torch.cat([ctx, torch.randn(3, 5, cfg.text_dim)], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(3, 5, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(model(x, t, longer, longer_mask), out, rtol=0, atol=1e-5)
    # ... while a real token does change the output
    real = ctx.clone()
    real[:, 0] += 1.0
    assert (model(x, t, real, mask) - out).abs().max() > 1e-4


def test_text_and_time_reach_the_output():
    cfg = tiny_unet_config(pooled_text=False)  # cross-attention alone must carry the text
    model = randomized(UNet(cfg)).eval()
    x, t, ctx, mask = inputs(cfg)
    out = model(x, t, ctx, mask)
    assert (model(x, t, torch.randn_like(ctx), mask) - out).abs().max() > 1e-4
    assert (model(x, (t + 100) % 1000, ctx, mask) - out).abs().max() > 1e-4


def test_cond_image_channels_are_concatenated():
    cfg = tiny_unet_config(cond_channels=3)
    model = randomized(UNet(cfg))
    x, t, ctx, mask = inputs(cfg)
    cond = torch.randn_like(x)
    out = model(x, t, ctx, mask, cond)
    assert out.shape == x.shape
    assert (model(x, t, ctx, mask, -cond) - out).abs().max() > 1e-4
    with pytest.raises(ValueError, match="cond_image"):
        model(x, t, ctx, mask)


def test_all_padding_mask_gives_finite_output():
    cfg = tiny_unet_config()
    model = randomized(UNet(cfg))
    x, t, ctx, mask = inputs(cfg)
    assert torch.isfinite(model(x, t, ctx, torch.zeros_like(mask))).all()


def test_config_validation_and_round_trip():
    cfg = tiny_unet_config()
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    assert UNetConfig.from_dict({**cfg.to_dict(), "channel_mults": [1, 2]}).channel_mults == (1, 2)
    with pytest.raises(ValueError, match="unknown UNetConfig field"):
        UNetConfig.from_dict({"base_chanels": 3})
    with pytest.raises(ValueError, match="num_heads"):
        UNetConfig(base_channels=10, num_heads=4)
    with pytest.raises(ValueError, match="image_size"):
        UNetConfig(image_size=12, channel_mults=(1, 2, 2, 2))
    assert count_parameters(UNet(cfg)) > 0


def test_timestep_embedding():
    e = timestep_embedding(torch.tensor([0, 1, 999]), 32)
    assert e.shape == (3, 32)
    torch.testing.assert_close(e[0], torch.cat([torch.ones(16), torch.zeros(16)]))
    assert not torch.allclose(e[1], e[2])


# --- text encoder (the real all-MiniLM-L6-v2 from the installed package) ---------------------------


def test_text_encoder_tokens_mask_and_sentence_embedding(tmp_path):
    enc = get_text_encoder("cpu", 32)
    tok, mask = enc.encode(["a red apple", "a smiling face with heart-shaped eyes", ""])
    assert tok.shape == (3, 32, TEXT_DIM) and mask.shape == (3, 32) and mask.dtype == torch.bool
    assert mask.sum(1).tolist()[0] == 5  # [CLS] a red apple [SEP]
    assert mask[2].sum() == 2  # empty prompt still has [CLS] [SEP]
    assert (tok[~mask] == 0).all() and torch.isfinite(tok).all()
    # cached prompts come back identical, in any batch
    tok2, _ = enc.encode(["a smiling face with heart-shaped eyes"])
    assert torch.equal(tok2[0], tok[1])

    emb = enc.embed(["a red apple", "a green apple", "a racing car"])
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.2  # apples are closer to each other than to a car

    captions = ["a cat", "a dog", "a cat"]
    a_tok, a_mask = cached_encode(captions, tmp_path, enc)
    files = list(tmp_path.glob("text_*.safetensors"))
    assert len(files) == 1
    b_tok, b_mask = cached_encode(captions, tmp_path, enc)
    assert (
        torch.equal(a_tok, b_tok)
        and torch.equal(a_mask, b_mask)
        and a_tok.shape[1] == int(a_mask.sum(1).max())
    )
    assert torch.equal(a_tok[0], a_tok[2])
    cached_encode(["another", "list"], tmp_path, enc)
    assert len(list(tmp_path.glob("text_*.safetensors"))) == 2  # keyed by the captions' hash
