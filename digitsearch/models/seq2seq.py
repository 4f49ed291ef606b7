"""The LSTM encoder-decoder that adds numbers (the users' "LSTM adder" report, after Keras'
addition_rnn example), generalised: encoder/decoder width and depth, dropout, teacher forcing.

Input: one-hot question symbols (N, in_length, vocab); output: logits (N, out_length, vocab).
The encoder's last hidden state is the context. It starts the decoder (through a linear
bridge) and is fed to it at every step, as Keras' RepeatVector does. The decoder then emits
one symbol per step, reading the previous symbol: its own prediction, or, while training
with probability `teacher_forcing`, the true one. With `reverse_output` it emits the answer's
last symbol first (units, then tens: the order in which carries are worked out) and flips
the logits back, so callers always see the answer in reading order. With `attention` each
step also looks back over the encoder's outputs (Luong's "general" score), so it can read
the two digits it is adding instead of recovering them from one vector.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from digitsearch.models._registry import register


class Seq2SeqAdder(nn.Module):
    def __init__(self, vocab_size, in_length, out_length, encoder_width, decoder_width, encoder_layers,
                 decoder_layers, dropout, teacher_forcing, reverse_input, reverse_output, attention):
        super().__init__()
        self.vocab_size, self.out_length = vocab_size, out_length
        self.decoder_layers, self.decoder_width = decoder_layers, decoder_width
        self.teacher_forcing, self.reverse_input, self.reverse_output = teacher_forcing, reverse_input, reverse_output
        self.encoder = nn.LSTM(vocab_size, encoder_width, encoder_layers, batch_first=True,
                               dropout=dropout if encoder_layers > 1 else 0.0)
        self.bridge = nn.Linear(encoder_width, decoder_width * decoder_layers)
        self.decoder = nn.LSTM(encoder_width + vocab_size, decoder_width, decoder_layers, batch_first=True,
                               dropout=dropout if decoder_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(decoder_width, vocab_size)
        self.attention = attention
        if attention:
            self.score = nn.Linear(decoder_width, encoder_width, bias=False)
            self.combine = nn.Linear(decoder_width + encoder_width, decoder_width)

    def _encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(every step's output (N, L, encoder_width), the top layer's final state (N, encoder_width))."""
        if self.reverse_input:  # puts the last digits, which decide the sum's carries, near the output
            x = x.flip(1)
        outputs, (h, _) = self.encoder(x)
        return outputs, self.dropout(h[-1])

    def _attend(self, h: Tensor, memory: Tensor) -> Tensor:
        weights = torch.softmax(torch.bmm(memory, self.score(h).unsqueeze(2)).squeeze(2), 1)  # (N, L)
        read = torch.bmm(weights.unsqueeze(1), memory).squeeze(1)
        return torch.tanh(self.combine(torch.cat([h, read], 1)))

    def _start_state(self, context: Tensor) -> tuple[Tensor, Tensor]:
        n = context.shape[0]
        h = torch.tanh(self.bridge(context)).view(n, self.decoder_layers, self.decoder_width)
        h = h.transpose(0, 1).contiguous()
        return h, torch.zeros_like(h)

    def forward(self, x: Tensor, targets: Tensor | None = None) -> Tensor:
        if self.reverse_output:
            targets = None if targets is None else targets.flip(1)
            return self._decode(x, targets).flip(1)
        return self._decode(x, targets)

    def _decode(self, x: Tensor, targets: Tensor | None) -> Tensor:
        memory, context = self._encode(x)
        state = self._start_state(context)
        previous = torch.zeros(x.shape[0], self.vocab_size, device=x.device, dtype=x.dtype)  # "start" symbol
        steps = []
        for t in range(self.out_length):
            step_in = torch.cat([context, previous], 1).unsqueeze(1)
            output, state = self.decoder(step_in, state)
            h = self._attend(output[:, 0], memory) if self.attention else output[:, 0]
            logits = self.out(self.dropout(h))
            steps.append(logits)
            forced = targets is not None and self.training and torch.rand(()) < self.teacher_forcing
            symbol = targets[:, t] if forced else logits.argmax(1)
            previous = F.one_hot(symbol, self.vocab_size).to(x.dtype)
        return torch.stack(steps, 1)


@register("seq2seq", task="sequence")
def seq2seq(
    encoder_width: int = 128,
    decoder_width: int = 128,
    encoder_layers: int = 1,
    decoder_layers: int = 1,
    dropout: float = 0.0,
    teacher_forcing: float = 0.5,
    reverse_input: bool = True,
    reverse_output: bool = False,
    attention: bool = False,
    vocab_size: int = 12,
    in_length: int = 7,
    out_length: int = 3,
) -> Seq2SeqAdder:
    """LSTM encoder-decoder for the addition task: encoder/decoder width and layers, dropout, teacher forcing."""
    return Seq2SeqAdder(vocab_size, in_length, out_length, encoder_width, decoder_width, encoder_layers,
                        decoder_layers, dropout, teacher_forcing, reverse_input, reverse_output, attention)
