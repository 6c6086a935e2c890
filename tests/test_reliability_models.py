"""Issue 14, loading models: a broken checkpoint folder is one line naming the file and the fix, before anything
is built (a BERT config.json used to make transformers build a default 12.7B Qwen2-Audio and get OOM-killed)."""

from __future__ import annotations

import json
import shutil

import pytest

from models.loading import ModelLoadError, check_model_folder, load_model

pytestmark = pytest.mark.usefixtures("single_thread")


def _broken(tmp_path, tiny_model_dir, name, damage):
    folder = tmp_path / name
    shutil.copytree(tiny_model_dir, folder)
    damage(folder)
    return folder


def _truncate(file):
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


def _bert(folder):
    (folder / "config.json").write_text(
        json.dumps(
            {"model_type": "bert", "architectures": ["BertForMaskedLM"], "hidden_size": 768, "num_hidden_layers": 12}
        )
    )


def _other_width(folder):
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["hidden_size"] *= 2
    (folder / "config.json").write_text(json.dumps(config))


CASES = {
    "bert config": (_bert, "config.json: describes a bert model (BertForMaskedLM), not qwen2_audio"),
    "no config": (lambda f: (f / "config.json").unlink(), "no config.json, so this is not a model checkpoint"),
    "garbage config": (lambda f: (f / "config.json").write_text("{oops"), "config.json: not valid JSON"),
    "truncated weights": (lambda f: _truncate(f / "model.safetensors"), "model.safetensors: truncated safetensors"),
    "no weights": (lambda f: (f / "model.safetensors").unlink(), "no weights (*.safetensors)"),
    "shape mismatch": (_other_width, "model.safetensors: tensor model."),
    "no tokenizer": (lambda f: (f / "tokenizer.json").unlink(), "no tokenizer files (tokenizer.json"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_model_folder_is_one_line_naming_the_file(tmp_path, tiny_model_dir, case):
    damage, expected = CASES[case]
    folder = _broken(tmp_path, tiny_model_dir, case.replace(" ", "_"), damage)
    with pytest.raises(ModelLoadError) as info:
        load_model(folder, device="cpu")
    message = str(info.value)
    assert expected in message and "\n" not in message
    assert str(folder) in message


def test_intact_folder_passes_the_checks(tiny_model_dir):
    check_model_folder(tiny_model_dir)
