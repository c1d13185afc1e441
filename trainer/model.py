"""The proposal network q(latents | image) of inference compilation (Le et al. 2017, arXiv 1703.00868).

A CNN embeds the image once; an LSTM then steps through the trace's addresses in program order
(num_chars, font, font_size, kerning, char/0, ...). Step t sees [image embedding, embedding of the previous
latent's value, embedding of address t] and a head per address family gives a categorical over that
latent's prior support. With `NetConfig.attend` the steps also attend to image columns: an intermediate
feature map becomes one vector per column (plus the column's position), step t's query comes from the LSTM's
state after step t-1, and the attended column summary joins the step's input and its head's input (Xu et al.
2015's "show, attend and tell", one head, over columns), so reading character i can look where it is
instead of decoding it from one global vector. Trained with the true previous values fed in (teacher
forcing), the loss -log q(trace | image) is KL(p || q) up to a constant, averaged over the prior's traces.

A plain nn.Module: no Ray here (trainer/train.py adds the distribution).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from synthstream.style import Style


@dataclass(frozen=True)
class NetConfig:
    """Network shape. `conv` lists (out_channels, pool_after) per 3x3 conv layer."""

    downsample: int = 1             # average-pool the input by this factor first
    stem_stride: int = 1            # stride of the first conv (cheap early down-sampling)
    conv: tuple[tuple[int, bool], ...] = ((64, False), (64, True), (128, False), (128, True), (128, False),
                                          (128, True))
    fc: tuple[int, ...] = (1024, 1024)
    embed_value: int = 64
    embed_address: int = 64
    lstm_hidden: int = 512
    lstm_layers: int = 2
    attend: int = 0                 # width of the column attention (0: none, the paper's global embedding only)
    attend_from: int = -1           # conv layer whose output (before its pool) becomes the columns


PRESETS: dict[str, NetConfig] = {
    # the paper's: six 3x3 convs 64-64-128-128-128-128, three max-pools, two FC 1024, two LSTM layers of 512
    "paper": NetConfig(),
    # 2 CPU cores: a strided stem and narrow early layers (memory-bound at full size), one LSTM layer
    "cpu": NetConfig(downsample=1, stem_stride=2, conv=((16, False), (32, True), (64, True), (96, True)),
                     fc=(384,), embed_value=32, embed_address=32, lstm_hidden=384, lstm_layers=1),
    # one big GPU: wide convs, two LSTM layers of 1024
    "gpu": NetConfig(conv=((64, False), (96, True), (192, False), (192, True), (256, False), (256, True)),
                     fc=(1536,), embed_value=64, embed_address=64, lstm_hidden=1024, lstm_layers=2),
}
# the same networks with steps that attend to columns of the last conv layer before its pool (on `cpu` an
# eighth of the image's width: 25 columns at 200 px, each seeing ~37 px; on `gpu` a quarter: 50 columns)
PRESETS["cpu-columns"] = replace(PRESETS["cpu"], attend=128, attend_from=3)
PRESETS["gpu-columns"] = replace(PRESETS["gpu"], attend=256, attend_from=5)


@dataclass(frozen=True)
class LatentSpace:
    """What the network needs of the latent codec (synthstream/trace.py): support size per head family, in
    program order (scalars, then characters), and where the characters start."""

    num_chars_lo: int
    sizes: tuple[int, ...]          # support size of each scalar address, then the alphabet size
    max_chars: int

    @classmethod
    def of(cls, style) -> LatentSpace:
        from synthstream.trace import codec_of

        codec = codec_of(style)
        return cls(num_chars_lo=codec.num_chars_lo, sizes=codec.family_sizes, max_chars=codec.max_chars)

    @property
    def char_start(self) -> int:
        return len(self.sizes) - 1

    @property
    def steps(self) -> int:
        return self.char_start + self.max_chars

    def family(self, t: int) -> int:
        """Index of the head used at step t: one per scalar, then one for every character."""
        return min(t, self.char_start)


class ProposalNet(nn.Module):
    def __init__(self, net: NetConfig, space: LatentSpace, image_hw: tuple[int, int]) -> None:
        super().__init__()
        self.net, self.space = net, space
        layers: list[nn.Module] = []
        if net.downsample > 1:
            layers.append(nn.AvgPool2d(net.downsample))
        c_in = 1
        self.tap = -1                               # index in self.cnn whose output is the column map
        for i, (c_out, pool) in enumerate(net.conv):
            stride = net.stem_stride if i == 0 else 1
            layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True)]
            if net.attend and i == net.attend_from % len(net.conv):
                self.tap = len(layers) - 1
            if pool:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.cnn = nn.Sequential(*layers).to(memory_format=torch.channels_last)   # faster on CPU and GPU
        with torch.no_grad():
            out, column_map = self._features(torch.zeros(1, 1, *image_hw))
        flat = out.numel()
        fcs: list[nn.Module] = []
        for width in net.fc:
            fcs += [nn.Linear(flat, width), nn.ReLU(inplace=True)]
            flat = width
        self.fc = nn.Sequential(*fcs)
        # previous-value tokens: 0 = start, 1 = absent (past the text's end), then one block per family
        self.value_offsets = [2]
        for n in space.sizes[:-1]:
            self.value_offsets.append(self.value_offsets[-1] + n)
        self.value_embed = nn.Embedding(self.value_offsets[-1] + space.sizes[-1], net.embed_value)
        self.address_embed = nn.Embedding(space.steps, net.embed_address)
        if column_map is not None:
            _, C, Hc, Wc = column_map.shape
            self.column_proj = nn.Linear(C * Hc, net.attend)        # one column of the map -> one vector
            self.column_pos = nn.Parameter(torch.zeros(Wc, net.attend))
            self.query = nn.Linear(net.lstm_hidden, net.attend)
        self.lstm = nn.LSTM(flat + net.embed_value + net.embed_address + net.attend, net.lstm_hidden,
                            net.lstm_layers, batch_first=True)
        self.heads = nn.ModuleList(nn.Linear(net.lstm_hidden + net.attend, n) for n in space.sizes)

    # -- pieces -------------------------------------------------------------------------------------------
    def _features(self, x: torch.Tensor, folded: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The CNN's output and, with attention, the map at the tap [B, C, H', W'] (None without). `folded`
        (inference): each batch norm folded into the conv before it, the same map up to float rounding."""
        column_map = None
        for i, layer in enumerate(self.cnn):
            if folded and isinstance(layer, nn.Conv2d):
                x = _folded_conv(layer, self.cnn[i + 1], x)
            elif not (folded and isinstance(layer, nn.BatchNorm2d)):
                x = layer(x)
            if i == self.tap:
                column_map = x
        return x, column_map

    def encode(self, images: torch.Tensor, folded: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """uint8 [B, H, W] -> the global embedding [B, E] and, with attention, the columns [B, W', attend];
        ink is bright (1 - x / 255). `folded`: see `_features`."""
        x = 1.0 - images.unsqueeze(1).to(self.value_embed.weight.dtype) / 255.0
        out, column_map = self._features(x.contiguous(memory_format=torch.channels_last), folded)
        columns = None
        if column_map is not None:
            columns = self.column_proj(column_map.permute(0, 3, 1, 2).flatten(2)) + self.column_pos
        return self.fc(out.flatten(1)), columns

    def pooled_features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W] -> the CNN's last map averaged over its positions [B, C]: how the images look to
        the network, at any image size (the fit's `seen` objective compares real and synthetic sets with it)."""
        x = 1.0 - images.unsqueeze(1).to(self.value_embed.weight.dtype) / 255.0
        return self._features(x.contiguous(memory_format=torch.channels_last))[0].mean(dim=(2, 3))

    def embed_image(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W] -> the global embedding [B, E]."""
        return self.encode(images)[0]

    def attend_columns(self, columns: torch.Tensor, h_top: torch.Tensor) -> torch.Tensor:
        """The columns [N, W', A] averaged by softmax(columns . query(h_top) / sqrt(A)) -> [N, A]."""
        scores = torch.einsum("nwa,na->nw", columns, self.query(h_top)) * columns.shape[2] ** -0.5
        return torch.einsum("nw,nwa->na", scores.softmax(dim=1), columns)

    def value_tokens(self, targets: torch.Tensor) -> torch.Tensor:
        """Token of each step's value (targets [B, T] class indices, -1 absent) -> [B, T]."""
        return torch.stack([self.value_tokens_at(targets[:, t], t) for t in range(targets.shape[1])], dim=1)

    def value_tokens_at(self, v: torch.Tensor, t: int) -> torch.Tensor:
        """Tokens of step t's values [B]: the family's block offset + class index; 1 when absent."""
        return torch.where(v >= 0, v + self.value_offsets[self.space.family(t)], torch.ones_like(v))

    def step_inputs(self, emb: torch.Tensor, prev_tokens: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        B, T = prev_tokens.shape
        return torch.cat([emb.unsqueeze(1).expand(B, T, emb.shape[1]), self.value_embed(prev_tokens),
                          self.address_embed(steps).unsqueeze(0).expand(B, T, -1)], dim=2)

    def logits(self, out: torch.Tensor) -> list[torch.Tensor]:
        """Per-step logits for the heads' inputs [B, T, H (+ attend)]."""
        return [self.heads[self.space.family(t)](out[:, t]) for t in range(out.shape[1])]

    # -- training -------------------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced -log q per sample [B] and the per-step argmax [B, T]."""
        B, T = targets.shape
        if self.net.attend:                          # each step's input depends on the last: one at a time
            state, steps = self._begin(images), []
            for t in range(T):
                out, state = self._advance(state, None if t == 0 else targets[:, t - 1], t)
                steps.append(out)
            out = torch.stack(steps, dim=1)
        else:
            emb = self.embed_image(images)
            prev = torch.cat([torch.zeros(B, 1, dtype=torch.long, device=targets.device),
                              self.value_tokens(targets[:, :-1])], dim=1)
            out, _ = self.lstm(self.step_inputs(emb, prev, torch.arange(T, device=targets.device)))
        nll = torch.zeros(B, device=targets.device, dtype=torch.float32)
        argmax = torch.empty_like(targets)
        for t, logit in enumerate(self.logits(out)):
            logit = logit.float()
            nll = nll + F.cross_entropy(logit, targets[:, t], ignore_index=-1, reduction="none")
            argmax[:, t] = logit.argmax(1)
        return nll, argmax

    # -- inference: one step at a time ---------------------------------------------------------------------
    def _begin(self, images: torch.Tensor, repeats: int = 1, folded: bool = False) -> StepState:
        """The state before step 0 (see `start`), differentiable (the attention preset trains through it) unless
        `folded` (see `_features`)."""
        lstm, V, A = self.lstm, self.net.embed_value, self.net.embed_address
        emb, columns = self.encode(images, folded)
        E = emb.shape[1]
        w = lstm.weight_ih_l0
        image_gates = F.linear(emb, w[:, :E], lstm.bias_ih_l0 + lstm.bias_hh_l0).repeat_interleave(repeats, dim=0)
        value_gates = F.linear(self.value_embed.weight, w[:, E:E + V])
        address_gates = F.linear(self.address_embed.weight, w[:, E + V:E + V + A])
        if columns is not None:
            columns = columns.repeat_interleave(repeats, dim=0)
        n, layers, hidden = image_gates.shape[0], self.net.lstm_layers, self.net.lstm_hidden
        zeros = image_gates.new_zeros(layers, n, hidden)
        return StepState(image_gates, value_gates, address_gates, zeros, zeros.clone(), columns)

    def _advance(self, state: StepState, prev: torch.Tensor | None, t: int) -> tuple[torch.Tensor, StepState]:
        """Step t: the head's input [N, H (+ attend)] and the state after it (see `step`)."""
        lstm = self.lstm
        token = torch.zeros(state.h.shape[1], dtype=torch.long, device=state.h.device) if t == 0 else \
            self.value_tokens_at(prev.long(), t - 1)
        x_gates = state.image_gates + state.value_gates[token] + state.address_gates[t]
        context = None
        if state.columns is not None:
            context = self.attend_columns(state.columns, state.h[-1])
            x_gates = x_gates + F.linear(context, lstm.weight_ih_l0[:, -self.net.attend:])
        hs, cs, below = [], [], None
        for layer in range(self.net.lstm_layers):
            h_prev, c_prev = state.h[layer], state.c[layer]
            if layer == 0:
                gates = x_gates + F.linear(h_prev, lstm.weight_hh_l0)
            else:
                gates = (F.linear(below, getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"bias_ih_l{layer}"))
                         + F.linear(h_prev, getattr(lstm, f"weight_hh_l{layer}"), getattr(lstm, f"bias_hh_l{layer}")))
            below, c = _cell(gates, c_prev)
            hs.append(below)
            cs.append(c)
        out = below if context is None else torch.cat([below, context], dim=1)
        return out, StepState(state.image_gates, state.value_gates, state.address_gates, torch.stack(hs),
                              torch.stack(cs), state.columns)

    @torch.no_grad()
    def start(self, images: torch.Tensor, repeats: int = 1) -> StepState:
        """The state before step 0 for uint8 images [B, H, W], `repeats` rows per image (image-major). The
        CNN runs once per image; the image's share of the first LSTM layer's input projection is computed
        here once, and the value and address embeddings' shares become lookup tables, so that a step costs
        only the recurrent matrix products (what beam search and sampling repeat many times)."""
        return self._begin(images, repeats)

    @torch.no_grad()
    def step(self, state: StepState, prev: torch.Tensor | None, t: int) -> tuple[torch.Tensor, StepState]:
        """Log-probabilities [N, support of step t] (float32) of step t's value, given the class indices of
        step t-1's values `prev` [N] (-1 absent; ignored at t = 0), and the state after step t. Numerically the
        same network as `forward` (nn.LSTM's gate order i, f, g, o)."""
        out, state = self._advance(state, prev, t)
        return F.log_softmax(self.heads[self.space.family(t)](out).float(), dim=1), state

    @torch.no_grad()
    def beam_start(self, images: torch.Tensor) -> BeamState:
        """The beam's state before step 0 for uint8 images [B, H, W]: one hypothesis per image."""
        s = self._begin(images, folded=not self.training)      # folding uses the running statistics
        return BeamState(s.image_gates, s.value_gates, s.address_gates, s.h, s.c,
                         torch.arange(images.shape[0]), s.columns)

    @torch.no_grad()
    def beam_step(self, state: BeamState, prev: torch.Tensor | None, t: int) -> tuple[torch.Tensor, BeamState]:
        """`step` for beam hypotheses: the same log-probabilities [N, support] (up to float rounding), with the
        share of the gates that depends on the parent row alone (image, address, attention, recurrent
        products) computed once per distinct parent, and the attention batched per image."""
        lstm, layers = self.lstm, self.net.lstm_layers
        u, inv = torch.unique(state.parents, return_inverse=True)
        h_u = state.h[:, u]
        per = state.h.shape[1] // state.image_gates.shape[0]            # computed rows per image
        base = state.image_gates.index_select(0, u // per).add_(state.address_gates[t])
        context = None
        if state.columns is not None:
            context = self._attend_rows(state.columns, h_u[-1], u, per)
            base.addmm_(context, lstm.weight_ih_l0[:, -self.net.attend:].t())
            context = context.index_select(0, inv)
        base.addmm_(h_u[0], lstm.weight_hh_l0.t())
        token = torch.zeros_like(state.parents) if t == 0 else self.value_tokens_at(prev.long(), t - 1)
        gates = base.index_select(0, inv).add_(state.value_gates.index_select(0, token))
        below, c = _cell_(gates, state.c[0, state.parents])
        hs, cs = [below], [c]
        for layer in range(1, layers):
            recurrent = F.linear(h_u[layer], getattr(lstm, f"weight_hh_l{layer}"), getattr(lstm, f"bias_hh_l{layer}"))
            gates = F.linear(below, getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"bias_ih_l{layer}"))
            below, c = _cell_(gates.add_(recurrent.index_select(0, inv)), state.c[layer, state.parents])
            hs.append(below)
            cs.append(c)
        out = below if context is None else torch.cat([below, context], dim=1)
        logp = F.log_softmax(self.heads[self.space.family(t)](out).float(), dim=1)
        return logp, BeamState(state.image_gates, state.value_gates, state.address_gates, torch.stack(hs),
                               torch.stack(cs), torch.arange(len(below)), state.columns)

    def _attend_rows(self, columns: torch.Tensor, h_top: torch.Tensor, rows: torch.Tensor, per: int) -> torch.Tensor:
        """`attend_columns` for some rows [R] of an image-major layout with `per` rows per image, given their
        h_top [R, H] and the columns once per image [B, W', A]: one batched product per image, no copies of
        the columns."""
        B, _, A = columns.shape
        query = h_top.new_zeros(B * per, A)
        query[rows] = self.query(h_top)
        scores = torch.bmm(query.view(B, per, A), columns.transpose(1, 2)) * A ** -0.5
        return torch.bmm(scores.softmax(dim=2), columns).view(B * per, A)[rows]

    # -- inference ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, images: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None,
               repeats: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Run q forward on its own outputs: greedy (or ancestral samples), `repeats` traces per image (the
        CNN runs once per image). Returns class indices [B * repeats, T] (image-major, -1 past the decoded
        num_chars) and log q of them [B * repeats]."""
        state = self.start(images, repeats)
        B, T, dev = state.h.shape[1], self.space.steps, images.device
        values = torch.full((B, T), -1, dtype=torch.long, device=dev)
        logq = torch.zeros(B, device=dev)
        n_chars = None
        for t in range(T):
            logp, state = self.step(state, None if t == 0 else values[:, t - 1], t)
            if sample:
                v = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
            else:
                v = logp.argmax(1)
            active = torch.ones(B, dtype=torch.bool, device=dev) if n_chars is None else \
                (t - self.space.char_start) < n_chars
            logq = logq + torch.where(active, logp.gather(1, v[:, None]).squeeze(1), torch.zeros_like(logq))
            values[:, t] = torch.where(active, v, torch.full_like(v, -1))
            if t == 0:
                n_chars = v + self.space.num_chars_lo
        return values, logq


@dataclass(frozen=True)
class StepState:
    """What `ProposalNet.step` carries between steps: per-row input projections and LSTM state [layers, N, H]."""

    image_gates: torch.Tensor       # [N, 4H]: the image embedding's share of layer 0's gates (+ both biases)
    value_gates: torch.Tensor       # [tokens, 4H]: each previous-value token's share
    address_gates: torch.Tensor     # [steps, 4H]: each address's share
    h: torch.Tensor
    c: torch.Tensor
    columns: torch.Tensor | None = None     # [N, W', attend] with column attention

    def take(self, rows: torch.Tensor) -> StepState:
        """The state of some rows (beam reordering, particle selection)."""
        return StepState(self.image_gates[rows], self.value_gates, self.address_gates, self.h[:, rows],
                         self.c[:, rows], None if self.columns is None else self.columns[rows])


@dataclass(frozen=True)
class BeamState:
    """What `ProposalNet.beam_step` carries: image-level inputs once per image [B, ...], the LSTM state
    [layers, M, H] of the M rows the last step computed (image-major, M / B per image), and `parents` [N]: the
    computed row each hypothesis continues (image-major too; an image's hypotheses continue its own rows)."""

    image_gates: torch.Tensor       # [B, 4H]
    value_gates: torch.Tensor
    address_gates: torch.Tensor
    h: torch.Tensor
    c: torch.Tensor
    parents: torch.Tensor
    columns: torch.Tensor | None = None     # [B, W', attend]

    def take(self, rows: torch.Tensor) -> BeamState:
        """The hypotheses `rows` (beam reordering: an image's from its own), without copying any state."""
        return replace(self, parents=self.parents[rows])


def _folded_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """bn(conv(x)) with the (eval-mode) batch norm folded into the conv's weights and bias: one pass."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return F.conv2d(x, conv.weight * scale[:, None, None, None], bn.bias - bn.running_mean * scale, conv.stride,
                    conv.padding)


def _cell(gates: torch.Tensor, c_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM cell update from its gates [N, 4H] (nn.LSTM's order i, f, g, o): (h, c)."""
    H = c_prev.shape[1]
    sig = torch.sigmoid(gates)
    c = sig[:, H:2 * H] * c_prev + sig[:, :H] * torch.tanh(gates[:, 2 * H:3 * H])
    return sig[:, 3 * H:] * torch.tanh(c), c


def _cell_(gates: torch.Tensor, c_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`_cell` overwriting `gates` (inference: no temporaries the size of the gates)."""
    H = c_prev.shape[1]
    gates[:, :2 * H].sigmoid_()
    gates[:, 3 * H:].sigmoid_()
    g = gates[:, 2 * H:3 * H].tanh_()
    c = (gates[:, H:2 * H] * c_prev).addcmul_(gates[:, :H], g)
    return torch.tanh(c).mul_(gates[:, 3 * H:]), c


def build_model(preset: str, style) -> ProposalNet:
    if preset not in PRESETS:
        from synthstream.errors import UserError
        raise UserError(f"unknown preset {preset!r}; available: {', '.join(PRESETS)}")
    return ProposalNet(PRESETS[preset], LatentSpace.of(style), (style.height, style.width))


# Bounds on a network shape read from a file (a checkpoint's `net`): each field's range, then the whole
# network's parameter count, both checked before a byte of it is allocated.
_NET_INT_BOUNDS = {"downsample": (1, 16), "stem_stride": (1, 8), "embed_value": (1, 4096),
                   "embed_address": (1, 4096), "lstm_hidden": (1, 8192), "lstm_layers": (1, 8), "attend": (0, 4096),
                   "attend_from": (-64, 63)}
_MAX_CONV, _MAX_CHANNELS, _MAX_FC, _MAX_WIDTH = 32, 4096, 8, 65536
MAX_PARAMETERS = 500_000_000        # 2 GB of float32 weights; the shipped networks have a few million


def net_config_from_raw(raw) -> NetConfig:
    """A NetConfig from its plain form (a checkpoint's `net`), every field checked (ValueError names it)."""
    if not isinstance(raw, dict):
        raise ValueError(f"expected a table, got {type(raw).__name__}")
    known = set(NetConfig.__dataclass_fields__)
    unknown = sorted(set(raw) - known, key=str)
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}")

    def integer(name, value, lo, hi):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"{name} = {value!r} must be an integer in [{lo}, {hi}]")
        return value

    values = {k: integer(k, raw[k], *_NET_INT_BOUNDS[k]) for k in _NET_INT_BOUNDS if k in raw}
    if "conv" in raw:
        conv = raw["conv"]
        if not isinstance(conv, (list, tuple)) or not 1 <= len(conv) <= _MAX_CONV or not all(
                isinstance(layer, (list, tuple)) and len(layer) == 2 and isinstance(layer[1], bool) for layer in conv):
            raise ValueError(f"conv = {conv!r} must list 1-{_MAX_CONV} [channels, pool] pairs")
        values["conv"] = tuple((integer("conv channels", c, 1, _MAX_CHANNELS), p) for c, p in conv)
    if "fc" in raw:
        fc = raw["fc"]
        if not isinstance(fc, (list, tuple)) or len(fc) > _MAX_FC:
            raise ValueError(f"fc = {fc!r} must list at most {_MAX_FC} layer widths")
        values["fc"] = tuple(integer("fc width", w, 1, _MAX_WIDTH) for w in fc)
    return NetConfig(**values)


def net_config_problem(raw, style_raw: dict) -> str:
    """Why a checkpoint's network shape cannot be built for its style ("" if it can): a bad field, a feature
    map pooled away, or more than MAX_PARAMETERS weights (counted on the meta device: nothing allocated)."""
    from synthstream.style import parse_style

    try:
        net = net_config_from_raw(raw)
    except ValueError as e:
        return str(e)
    style = parse_style(style_raw, "checkpoint")
    try:
        with torch.device("meta"):
            shell = ProposalNet(net, LatentSpace.of(style), (style.height, style.width))
    except (RuntimeError, ValueError) as e:
        return f"it does not fit a {style.width}x{style.height} image ({str(e).splitlines()[0][:100]})"
    count = sum(p.numel() for p in shell.parameters())
    if count > MAX_PARAMETERS:
        return f"{count:,} weights ({count * 4 / 1e9:.1f} GB), more than the {MAX_PARAMETERS:,} allowed"
    return ""


def model_from_checkpoint(state: dict) -> tuple[ProposalNet, Style]:
    """Rebuild the network a checkpoint was trained as (its own NetConfig, not today's preset) and load it."""
    from synthstream.style import parse_style

    style = parse_style(state["style"], "checkpoint")
    raw = state.get("net")
    net = PRESETS[state["preset"]] if raw is None else net_config_from_raw(raw)
    model = ProposalNet(net, LatentSpace.of(style), (style.height, style.width))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:                       # missing/unexpected keys, wrong shapes
        from synthstream.errors import UserError
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise UserError(f"checkpoint weights do not fit its network ({first[:160]})") from None
    return model.eval(), style
