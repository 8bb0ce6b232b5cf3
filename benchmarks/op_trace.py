"""Where an exported translator's time goes, op by op: one traced call of a signature.

Loads the SavedModel with the session loader (as TensorFlow Serving does), runs one batch
with full tracing, and prints the op time of each graph loop (the packed encoder's, the
decoding loop's, everything outside them) and the ops that take the most time, with the
number of times each ran. Tracing adds a few microseconds to every op, so shares are a
better guide than absolute times; the ops are summed over both cores.

    python op_trace.py --model ../saved_models/spa-en-small/1 --source test.spa --batch-size 64
"""

import argparse
import collections
import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401  registers the text ops
from decoding_speed import read_sources  # noqa: E402

LOOP_BODY = re.compile(r"while/body/_\d+/")


def traced_ops(model, sentences, signature):
    """[(node name, op type, microseconds)] of one traced call, after warm-up calls."""
    tf.compat.v1.disable_eager_execution()
    with tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], model)
        definition = meta_graph.signature_def[signature]
        feed = {definition.inputs["text"].name: sentences}
        fetches = {name: tensor.name for name, tensor in definition.outputs.items()}
        for _ in range(5):
            outputs = session.run(fetches, feed)
        metadata = tf.compat.v1.RunMetadata()
        session.run(fetches, feed, run_metadata=metadata,
                    options=tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE))
    ops = [(node.node_name, node.timeline_label.split("(")[0].split("=")[-1].strip(),
            node.op_end_rel_micros)
           for device in metadata.step_stats.dev_stats for node in device.node_stats]
    return ops, outputs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="SavedModel directory")
    parser.add_argument("--source", required=True, help="sentences, one a line")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--signature", default="greedy")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    sentences = read_sources(args.source, args.batch_size)
    ops, outputs = traced_ops(args.model, sentences, args.signature)
    total = sum(micros for _, _, micros in ops)
    steps = int(max(outputs["length"])) if len(outputs["length"]) else 0
    # Name each loop body by the layers its ops belong to: the RNN decoding loop projects
    # onto the vocabulary (W_s), the Transformer's attends to the source (cross_attention);
    # the RNN encoder's loop only runs RNN cells.
    layers = collections.defaultdict(set)
    for name, _, _ in ops:
        match = LOOP_BODY.search(name)
        if match:
            layers[match.group(0)].update(name[match.end():].split("/"))
    named = {body: "decoding loop" if any(part.startswith(("W_s", "cross_attention"))
                                          for part in parts)
             else "encoder loop" if any("cell" in part for part in parts) else None
             for body, parts in layers.items()}
    loops = collections.defaultdict(lambda: [0, 0])
    by_node = collections.defaultdict(lambda: [0, 0, ""])
    decoding_by_type = collections.defaultdict(lambda: [0, 0])  # op type: [micros, runs]
    for name, op_type, micros in ops:
        match = LOOP_BODY.search(name)
        loop = (named[match.group(0)] or f"loop {match.group(0)}") if match else "outside loops"
        short = name[match.end():] if match else name.split("/")[-1]
        loops[loop][0] += micros
        loops[loop][1] += 1
        by_node[(loop, short)][0] += micros
        by_node[(loop, short)][1] += 1
        by_node[(loop, short)][2] = op_type
        if loop == "decoding loop":
            decoding_by_type[op_type][0] += micros
            decoding_by_type[op_type][1] += 1
    print(f"{args.signature}, batch {len(sentences)}: {len(ops)} ops, {total / 1000:.1f} ms of op "
          f"time, {steps} decoding steps")
    print(f"{'loop':<24}{'op ms':>10}{'share':>8}{'ops':>8}")
    for loop, (micros, count) in sorted(loops.items(), key=lambda item: -item[1][0]):
        print(f"{loop:<24}{micros / 1000:>10.2f}{micros / total:>8.1%}{count:>8}")
    if steps and "decoding loop" in loops:
        print(f"decoding loop: {loops['decoding loop'][1] / steps:.1f} ops a step")
        print(f"\n{'decoding loop by op type':<32}{'ms':>8}{'share':>8}{'a step':>8}")
        ranked_types = sorted(decoding_by_type.items(), key=lambda item: -item[1][0])
        for op_type, (micros, count) in ranked_types[:args.top]:
            print(f"{op_type:<32}{micros / 1000:>8.2f}{micros / total:>8.1%}{count / steps:>8.1f}")
    print(f"\n{'op (loop body: node name)':<70}{'type':>24}{'ms':>8}{'share':>8}{'runs':>6}")
    ranked = sorted(by_node.items(), key=lambda item: -item[1][0])[:args.top]
    for (loop, short), (micros, count, op_type) in ranked:
        label = f"{loop.split()[0]}: {short}"
        print(f"{label[:69]:<70}{op_type:>24}{micros / 1000:>8.2f}{micros / total:>8.1%}{count:>6}")


if __name__ == "__main__":
    main()
