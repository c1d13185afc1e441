"""A trained reader for use outside this package: safetensors weights, or the greedy reader as one graph.

Formats (`synthstream export --format ...`):
* `pt`: the slim synthstream checkpoint (float16 weights, no optimiser); `load_reader` reads it with its recipe.
* `safetensors`: the float32 weights, with everything needed to rebuild the network and decode its output in
  the header's metadata (`synthstream.meta`: JSON below). `load_safetensors` rebuilds a `Reader`.
* `onnx`, `torchscript`: the image-to-string reader as one graph: `GreedyReader` below, the proposal network's
  greedy decode unrolled over the codec's fixed number of steps. Input `images` uint8 [B, H, W] (the style's
  height and width, grey, ink dark on light); outputs `chars` int64 [B, max_chars] (alphabet indices, -1 past
  the text's end) and `log_probs` float32 [B, steps, max_support] (each step's log-softmax over its address's
  support, padded with -inf). The metadata (ONNX `metadata_props`, TorchScript extra file `meta.json`) holds
  the alphabet, so text = "".join(alphabet[c] for c in row if c >= 0).

Beam search under a text prior (the recipe's default) branches on a word trie of data-dependent size, which
does not trace into a fixed graph; an exported graph reads greedily (q's own mode) and the metadata's `recipe`
says how this package reads the model (`load_reader`). The metadata JSON: format, style (name, width, height,
alphabet, num_chars range), codec (addresses in step order with their support sizes, char_start, max_chars),
recipe, net config, the styles (raw), versions; a safetensors file also carries `checkpoint`: the checkpoint's
contents but its tensors, so that its weights and metadata make a synthstream checkpoint again.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from synthstream.errors import UserError
from synthstream.output import atomic_write
from trainer.checkpoint import plain

FORMATS = {"pt": ".pt", "safetensors": ".safetensors", "onnx": ".onnx", "torchscript": ".pt"}
META_FORMAT = 1
META_KEY = "synthstream.meta"
OPSET = 17


class GreedyReader(nn.Module):
    """uint8 images [B, H, W] -> (chars [B, max_chars], log_probs [B, steps, max_support]): q's greedy decode
    with every step unrolled (the same arithmetic as `ProposalNet.decode`, traceable: no Python branching on
    tensor values)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).float().eval().requires_grad_(False)
        space = model.space
        self.steps, self.char_start, self.lo = space.steps, space.char_start, space.num_chars_lo
        self.width = max(space.sizes)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        state = m._begin(images)
        values, log_probs = [], []
        prev = None
        n_chars = None
        for t in range(self.steps):
            out, state = m._advance(state, prev, t)
            logp = torch.log_softmax(m.heads[m.space.family(t)](out).float(), dim=1)
            v = logp.argmax(1)
            if n_chars is not None:
                v = torch.where(n_chars > t - self.char_start, v, torch.full_like(v, -1))
            else:
                n_chars = v + self.lo
            pad = self.width - m.space.sizes[m.space.family(t)]
            if pad:
                logp = torch.cat([logp, torch.full_like(logp[:, :1], float("-inf")).expand(-1, pad)], dim=1)
            values.append(v)
            log_probs.append(logp)
            prev = v
        return torch.stack(values[self.char_start:], dim=1), torch.stack(log_probs, dim=1)


def metadata(reader) -> dict:
    """What a consumer needs besides the weights: the style's image size and alphabet, the codec, the recipe."""
    import numpy as np
    import ray

    from synthstream.trace import codec_of

    style, codec = reader.style, codec_of(reader.style)
    recipe = {k: v for k, v in asdict(reader.recipe).items()}
    lo, hi = style.latent_range("num_chars")
    return {"format": META_FORMAT, "name": reader.name,
            "style": {"name": style.name, "width": style.width, "height": style.height, "alphabet": style.alphabet,
                      "num_chars": [int(lo), int(hi)]},
            "codec": {"addresses": list(codec.supports), "support_sizes": [len(v) for v in codec.supports.values()],
                      "family_sizes": list(codec.family_sizes), "char_start": codec.char_start,
                      "max_chars": codec.max_chars, "num_chars_lo": codec.num_chars_lo},
            "recipe": recipe, "net": plain(asdict(reader.model.net)),
            "style_raw": style.to_raw(), "trained_style_raw": reader.trained.to_raw(),
            "graph": {"inputs": {"images": "uint8 [B, H, W]"},
                      "outputs": {"chars": "int64 [B, max_chars], -1 past the end",
                                  "log_probs": "float32 [B, steps, max(family_sizes)], -inf padded"},
                      "decoding": "greedy"},
            "versions": {"torch": torch.__version__, "ray": ray.__version__, "numpy": np.__version__}}


def export(reader, fmt: str, out: str | Path, checkpoint: str | Path | None = None) -> dict:
    """Write `reader` in `fmt` to `out`; returns the metadata written. The file is made in memory and written
    with `atomic_write`, so a full disk is one UserError line and never leaves part of a file (torch's own
    writers report a short write as a RuntimeError, after writing part of the file)."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    meta = metadata(reader)
    source = checkpoint if checkpoint is not None else reader.name
    if fmt == "pt":
        data = _pt(source)
    elif fmt == "safetensors":
        data = _safetensors(reader, {**meta, "checkpoint": _checkpoint_contents(source)})
    else:
        data = {"onnx": _onnx, "torchscript": _torchscript}[fmt](reader, meta)
    atomic_write(out, lambda tmp: Path(tmp).write_bytes(data))
    return meta


def _needs(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"this format needs the Python package {module.split('.')[0]}: "
                        f"pip install 'synthstream[export]'") from None


def _pt(checkpoint) -> bytes:
    """The slim checkpoint (trainer/checkpoint.py's `export`: float16 weights, no optimiser) as bytes."""
    from trainer.checkpoint import load, resolve

    state = load(resolve(str(checkpoint)))
    state["model"] = {k: (v.half() if v.is_floating_point() else v) for k, v in state["model"].items()}
    state["optimizer"] = None
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _checkpoint_contents(checkpoint) -> dict:
    """Everything a checkpoint holds but its tensors (plain types: config, style, network shape, recipe...)."""
    from trainer.checkpoint import load, resolve

    state = load(resolve(str(checkpoint)))
    return {k: v for k, v in state.items() if k not in ("model", "optimizer")}


def _safetensors(reader, meta: dict) -> bytes:
    st = _needs("safetensors.torch")
    tensors = {k: v.detach().float().contiguous() if v.is_floating_point() else v.contiguous()
               for k, v in reader.model.state_dict().items()}
    return st.save(tensors, metadata={META_KEY: json.dumps(meta)})


def _example(reader, n: int = 2) -> torch.Tensor:
    return torch.full((n, reader.style.height, reader.style.width), 255, dtype=torch.uint8)


def _onnx(reader, meta: dict) -> bytes:
    onnx = _needs("onnx")
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # tracer notes on the unrolled loop's Python ints
        torch.onnx.export(GreedyReader(reader.model), (_example(reader),), buf, input_names=["images"],
                          output_names=["chars", "log_probs"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={"images": {0: "batch"}, "chars": {0: "batch"}, "log_probs": {0: "batch"}})
    graph = onnx.load_from_string(buf.getvalue())
    graph.doc_string = "synthstream greedy reader: uint8 images [B, H, W] -> chars, log_probs"
    onnx.helper.set_model_props(graph, {META_KEY: json.dumps(meta)})
    return graph.SerializeToString()


def _torchscript(reader, meta: dict) -> bytes:
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(GreedyReader(reader.model), (_example(reader),), check_trace=False)
        torch.jit.save(traced, buf, _extra_files={"meta.json": json.dumps(meta)})   # (deprecated, still read)
    return buf.getvalue()


# -- loading, for the parity test and the examples in docs/serving.md ------------------------------------------

def read_metadata(path: str | Path) -> dict:
    """The metadata of an exported file (safetensors, onnx or torchscript)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            return json.loads(f.metadata()[META_KEY])
    if path.suffix == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return json.loads(props[META_KEY])
    extra = {"meta.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    return json.loads(extra["meta.json"])


def load_safetensors(path: str | Path, **overrides):
    """A `Reader` from an exported .safetensors file: its weights and the checkpoint contents the metadata
    carries (`checkpoint`) make a synthstream checkpoint again, which `load_reader` reads with its recipe
    (`overrides` as for `load_reader`)."""
    import tempfile

    from safetensors.torch import load_file

    from trainer.reader import load_reader

    meta = read_metadata(path)
    state = {**meta["checkpoint"], "model": load_file(str(path)), "optimizer": None}
    with tempfile.TemporaryDirectory(prefix="synthstream-safetensors-") as tmp:
        torch.save(state, Path(tmp) / "checkpoint.pt")
        reader = load_reader(Path(tmp) / "checkpoint.pt", **overrides)
    reader.name = str(path)
    return reader


def texts(chars, alphabet: str) -> list[str]:
    """Strings of exported `chars` rows (alphabet indices, -1 past the end)."""
    return ["".join(alphabet[c] for c in row if c >= 0) for row in chars.tolist()]

