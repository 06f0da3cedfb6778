#!/usr/bin/env python3
"""Write a llama-architecture GGUF model with random weights, for inference
tests that compare two runs token for token (directly and through the remote
GPU): greedy decoding is deterministic for fixed weights, whatever they are.

The default shape is TinyLlama 1.1B's (the model GVirtuS published its
remoting figure on): 22 layers, 2048 wide, 32 heads of which 4 for keys and
values, 5632 in the feed-forward, 32000 tokens. The weights are Q8_0 (the
norms f32), drawn from a seeded generator, so the same seed writes the same
file. The tokenizer is llama.cpp's own SentencePiece vocabulary test file
(models/ggml-vocab-llama-spm.gguf), copied key for key.

    python3 gpu/make_model.py --gguf-py SRC/gguf-py --vocab SRC/models/ggml-vocab-llama-spm.gguf \
        --out model.gguf [--layers N] [--seed S]

Needs numpy (the GPU machine's PyTorch brings it) and llama.cpp's gguf-py.
"""

import argparse
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf-py", required=True, help="llama.cpp's gguf-py directory")
    parser.add_argument("--vocab", required=True, help="a vocabulary-only GGUF file (llama SPM)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--layers", type=int, default=22)
    parser.add_argument("--embd", type=int, default=2048)
    parser.add_argument("--ff", type=int, default=5632)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()

    sys.path.insert(0, args.gguf_py)
    import numpy as np
    import gguf
    from gguf.quants import quantize

    start = time.monotonic()
    vocab = gguf.GGUFReader(args.vocab)
    writer = gguf.GGUFWriter(args.out, "llama")
    n_vocab = 0
    for field in vocab.fields.values():
        if not field.name.startswith("tokenizer."):
            continue
        main_type = field.types[0]
        sub_type = field.types[-1] if main_type == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        writer.add_key_value(field.name, value, main_type, sub_type=sub_type)
        if field.name == "tokenizer.ggml.tokens":
            n_vocab = len(value)
    if n_vocab == 0:
        print(f"make_model: {args.vocab} has no tokenizer.ggml.tokens", file=sys.stderr)
        return 2

    head_dim = args.embd // args.heads
    n_embd_kv = head_dim * args.kv_heads
    writer.add_name(f"cudastub random llama {args.layers}x{args.embd} seed {args.seed}")
    writer.add_context_length(args.ctx)
    writer.add_embedding_length(args.embd)
    writer.add_block_count(args.layers)
    writer.add_feed_forward_length(args.ff)
    writer.add_head_count(args.heads)
    writer.add_head_count_kv(args.kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)

    rng = np.random.default_rng(args.seed)
    q8 = gguf.GGMLQuantizationType.Q8_0

    def matrix(name: str, rows: int, cols: int) -> None:
        # numpy's (rows, cols) is ggml's ne = [cols, rows]: cols is the input.
        data = rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(0.02)
        writer.add_tensor(name, quantize(data, q8), raw_dtype=q8)

    def norm(name: str) -> None:
        data = np.float32(1.0) + rng.standard_normal(args.embd, dtype=np.float32) * np.float32(0.01)
        writer.add_tensor(name, data)

    matrix("token_embd.weight", n_vocab, args.embd)
    for i in range(args.layers):
        norm(f"blk.{i}.attn_norm.weight")
        matrix(f"blk.{i}.attn_q.weight", args.embd, args.embd)
        matrix(f"blk.{i}.attn_k.weight", n_embd_kv, args.embd)
        matrix(f"blk.{i}.attn_v.weight", n_embd_kv, args.embd)
        matrix(f"blk.{i}.attn_output.weight", args.embd, args.embd)
        norm(f"blk.{i}.ffn_norm.weight")
        matrix(f"blk.{i}.ffn_gate.weight", args.ff, args.embd)
        matrix(f"blk.{i}.ffn_up.weight", args.ff, args.embd)
        matrix(f"blk.{i}.ffn_down.weight", args.embd, args.ff)
    norm("output_norm.weight")
    matrix("output.weight", n_vocab, args.embd)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"make_model: wrote {args.out} ({args.layers} layers, {n_vocab} tokens) in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
