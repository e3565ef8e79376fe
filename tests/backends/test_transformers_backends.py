"""Transformers backends on tiny random-weight models built and saved here: a Llama-shaped chat model drives
TransformersTextModel; BLIP and LLaVA-shaped vision models drive TransformersCaptioner."""

from __future__ import annotations

import json

import pytest
from PIL import Image

transformers = pytest.importorskip("transformers")

from taleloom.backends.base import Sampling  # noqa: E402
from taleloom.backends.llm.transformers_llm import TransformersTextModel  # noqa: E402
from taleloom.backends.registry import create  # noqa: E402
from taleloom.backends.vision.transformers_captioner import TransformersCaptioner  # noqa: E402
from taleloom.errors import BackendError, ModelNotFoundError  # noqa: E402

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<image>", "<|system|>", "<|user|>", "<|assistant|>"]


def byte_tokenizer(chat_template: str | None = CHAT_TEMPLATE):
    """A byte-level tokenizer (any text encodes) with chat specials, as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {t: i for i, t in enumerate(SPECIALS + sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                                eos_token="</s>", pad_token="<pad>", chat_template=chat_template)


def tiny_llama_config(vocab_size: int):
    return transformers.LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                                    bos_token_id=1, eos_token_id=2, pad_token_id=3)


@pytest.fixture(scope="module")
def llm_folder(tmp_path_factory):
    import torch

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = byte_tokenizer()
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(tiny_llama_config(len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def llm(llm_folder):
    return create("llm", f"transformers:{llm_folder}", device="cpu")


def test_text_model_chat_is_seeded(llm):
    messages = [{"role": "user", "content": "Tell a story about a fox."}]
    a = llm.chat(messages, Sampling(temperature=0.9, max_tokens=12, seed=4))
    b = llm.chat(messages, Sampling(temperature=0.9, max_tokens=12, seed=4))
    c = llm.chat(messages, Sampling(temperature=0.9, max_tokens=12, seed=5))
    assert isinstance(a, str) and a == b and a != c
    assert llm.model_id.startswith("transformers:")


def test_text_model_streams_what_chat_says(llm):
    messages = [{"role": "user", "content": "Count to three."}]
    sampling = Sampling(temperature=0.0, max_tokens=10)
    pieces = list(llm.stream(messages, sampling))
    assert len(pieces) >= 1 and "".join(pieces).strip() == llm.chat(messages, sampling)


def test_text_model_schema_is_asked_and_checked(llm, monkeypatch):
    # random weights will not write JSON: the answer is checked and refused with a clear message
    with pytest.raises(BackendError, match="did not answer with a JSON object"):
        llm.chat([{"role": "user", "content": "Name?"}], Sampling(temperature=0.0, max_tokens=8),
                 schema={"type": "object"})
    seen = {}

    def fake_generate(**kwargs):
        seen["prompt"] = llm.tokenizer.decode(kwargs["input_ids"][0])
        answer = llm.tokenizer('Sure: {"name": "Pip"}', return_tensors="pt", add_special_tokens=False)["input_ids"]
        import torch

        return torch.cat([kwargs["input_ids"], answer], dim=1)

    monkeypatch.setattr(llm.model, "generate", fake_generate)
    text = llm.chat([{"role": "user", "content": "Name?"}], schema={"type": "object", "required": ["name"]})
    assert json.loads(text) == {"name": "Pip"} and '"required": ["name"]' in seen["prompt"]


def test_text_model_missing_folder_and_no_chat_template(tmp_path):
    with pytest.raises(ModelNotFoundError, match="hf download Qwen/Qwen2.5-1.5B-Instruct"):
        TransformersTextModel(str(tmp_path / "missing"))
    folder = tmp_path / "plain"
    tokenizer = byte_tokenizer(chat_template=None)
    transformers.LlamaForCausalLM(tiny_llama_config(len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    with pytest.raises(ModelNotFoundError, match="no chat template"):
        TransformersTextModel(str(folder), device="cpu")


@pytest.fixture(scope="module")
def blip_folder(tmp_path_factory):
    import torch

    folder = tmp_path_factory.mktemp("tiny-blip")
    tokenizer = byte_tokenizer()
    tokenizer.add_special_tokens({"bos_token": "<s>", "sep_token": "</s>"})
    text = transformers.BlipTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37,
                                       num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64,
                                       bos_token_id=1, sep_token_id=2, pad_token_id=3, encoder_hidden_size=32)
    vision = transformers.BlipVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                           num_attention_heads=4, image_size=32, patch_size=8)
    config = transformers.BlipConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=32)
    torch.manual_seed(0)
    transformers.BlipForConditionalGeneration(config).save_pretrained(folder)
    image_processor = transformers.BlipImageProcessor(size={"height": 32, "width": 32})
    transformers.BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def test_blip_captioner(blip_folder):
    captioner = create("captioner", f"transformers:{blip_folder}", device="cpu", max_new_tokens=12)
    assert captioner.kind == "blip"
    caption = captioner.caption(Image.new("RGB", (50, 40), "green"), hint="our garden")
    again = captioner.caption(Image.new("RGB", (50, 40), "green"), hint="our garden")
    assert caption.text and caption.text == again.text and caption.text != "our garden"  # BLIP's own words
    assert caption.facts["owner_description"] == "our garden" and "[blip]" in caption.model_id


@pytest.fixture(scope="module")
def llava_folder(tmp_path_factory):
    import torch

    folder = tmp_path_factory.mktemp("tiny-llava")
    tokenizer = byte_tokenizer()
    vision = transformers.CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                           num_attention_heads=4, image_size=32, patch_size=8, projection_dim=32)
    config = transformers.LlavaConfig(vision_config=vision.to_dict(), text_config=tiny_llama_config(len(tokenizer)).to_dict(),
                                      image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                                      vision_feature_layer=-1, vision_feature_select_strategy="default")
    torch.manual_seed(0)
    transformers.LlavaForConditionalGeneration(config).save_pretrained(folder)
    image_processor = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = transformers.LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8,
                                            vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
                                            num_additional_image_tokens=1)
    processor.save_pretrained(folder)
    return folder


def test_llava_captioner(llava_folder, monkeypatch):
    captioner = TransformersCaptioner(str(llava_folder), device="cpu", max_new_tokens=8)
    assert captioner.kind == "llava"
    caption = captioner.caption(Image.new("RGB", (64, 48), "blue"), hint="Mina at the beach")
    assert isinstance(caption.text, str) and "[llava]" in caption.model_id
    assert caption.text == captioner.caption(Image.new("RGB", (64, 48), "blue"), hint="Mina at the beach").text
    # the prompt carries the image tokens and the owner's words; a JSON answer becomes text + concepts
    import torch

    seen = {}

    def fake_generate(input_ids, pixel_values, **kwargs):
        seen["ids"], seen["pixels"] = input_ids[0].tolist(), tuple(pixel_values.shape)
        answer = captioner.processor.tokenizer('{"text": "A girl on sand.", "concepts": ["girl", "sand"]}',
                                               return_tensors="pt", add_special_tokens=False)["input_ids"]
        return torch.cat([input_ids, answer], dim=1)

    monkeypatch.setattr(captioner.model, "generate", fake_generate)
    caption = captioner.caption(Image.new("RGB", (64, 48), "blue"), hint="Mina at the beach")
    assert caption.text == "A girl on sand." and caption.concepts == ["girl", "sand"]
    image_id = captioner.processor.tokenizer.convert_tokens_to_ids("<image>")
    assert seen["ids"].count(image_id) == 16 and seen["pixels"] == (1, 3, 32, 32)
    assert "Mina at the beach" in captioner.processor.tokenizer.decode(seen["ids"])
