"""Command line: `keras-s2s demo | train | translate | evaluate | plot | client | export |
import | embeddings`.

It only parses arguments and calls the library; every command is a function there too.
The library (and with it TensorFlow) is imported inside the commands, so that --help answers
at once; TensorFlow's C++ log lines are hidden unless --verbose is given.
"""

import argparse
import dataclasses
import errno
import json
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="keras-s2s", description="Sequence-to-sequence learning with attention.")
    commands = parser.add_subparsers(dest="command", required=True)
    for add_command in (_add_demo, _add_train, _add_embeddings, _add_translate, _add_evaluate,
                        _add_plot, _add_client, _add_export, _add_import):
        add_command(commands)
    verbose_help = "show TensorFlow's C++ start-up and log lines (hidden by default)"
    parser.add_argument("--verbose", action="store_true", help=verbose_help)
    for command in commands.choices.values():
        # SUPPRESS: leaving it out after the command keeps a --verbose given before it.
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                             help=verbose_help)

    args = parser.parse_args(argv)
    if args.command != "client" or args.grpc:  # the REST client needs no TensorFlow
        _import_tensorflow(args.verbose)
    try:
        return args.handler(args)
    except Exception as error:  # sorted by _exit_code; the rest re-raised
        code = _exit_code(error)
        if code is None:
            raise
        print(f"keras-s2s {args.command}: error: {error}", file=sys.stderr)
        return code


def _exit_code(error):
    """The exit code for an error the user can act on, or None for a bug (a traceback).

    2: bad input (a value, a file that is missing, unreadable or damaged, a missing extra);
    1: the environment (the disk is full, another process writes to the same folder);
    3: a model server that is down or answers with an error; 4: a diverged run (the message
    names epoch and step).
    """
    from keras_s2s.locks import FolderInUseError
    from keras_s2s.serving import ServingError

    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return 1
    for kinds, code in ((FolderInUseError, 1), (ServingError, 3), (FloatingPointError, 4),
                        ((ValueError, OSError, ImportError), 2)):
        if isinstance(error, kinds):
            return code
    return None


def _beam_size(text):
    """--beam-size: an integer from 1 to config.MAX_BEAM_SIZE (argparse says which it got)."""
    from keras_s2s.config import check_beam_size

    try:
        check_beam_size(int(text), name="the beam size")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return int(text)


def _import_tensorflow(verbose):
    """Imports TensorFlow before a command does; unless `verbose`, without its log lines.

    TF_CPP_MIN_LOG_LEVEL=3 (set only if the environment has no value of its own) keeps
    TensorFlow's C++ info, warning and error lines off stderr; the lines its libraries print
    while they load come before that setting is read, so `import_tensorflow_quietly` filters
    them out. TF_ENABLE_ONEDNN_OPTS is left alone: it changes the numbers, not the logs.
    """
    if verbose:
        import tensorflow  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_s2s.startup import import_tensorflow_quietly

    import_tensorflow_quietly()


def _add_demo(commands):
    demo = commands.add_parser("demo", help="train, evaluate and export on an embedded task")
    demo.add_argument("--output-dir", default="demo_output")
    demo.add_argument("--task", default="dates", choices=["dates", "toy-ko"])
    demo.add_argument("--epochs", type=int, help="override the task preset's epochs")
    demo.add_argument("--train-size", type=int, default=20000)
    demo.add_argument("--test-size", type=int, default=1000)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=_demo)


def _demo(args):
    from keras_s2s.demo import run_demo

    run_demo(args.output_dir, task=args.task, train_size=args.train_size,
             test_size=args.test_size, epochs=args.epochs, seed=args.seed)
    return 0


def _add_train(commands):
    train = commands.add_parser("train", help="train with checkpoints; resumes by itself")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--task", choices=["dates", "toy-ko"], help="an embedded task")
    source.add_argument("--pairs", dest="pairs_path", metavar="PAIRS",
                        help="a TSV file (plain or .gz) of source<TAB>target lines")
    source.add_argument("--corpus", help="a named corpus in --data-dir: multi30k-de-en, "
                        "anki-spa-eng, anki-kor-eng, anki-eng-kor, ko-chatbot, ...")
    train.add_argument("--data-dir", help="folder holding the corpora (with --corpus)")
    train.add_argument("--average-last", type=int, default=0,
                       help="average the weights of the last N checkpoints before scoring")
    train.add_argument("--source-column", type=int, default=0)
    train.add_argument("--target-column", type=int, default=1)
    train.add_argument("--checkpoint-dir", required=True)
    train.add_argument("--preset", dest="preset_name", metavar="PRESET",
                       help="model and training preset (default: the task's or corpus's own; "
                       "the ModelConfig/TrainConfig defaults for --pairs)")
    train.add_argument("--architecture", choices=("rnn", "transformer"),
                       help="a new model of this architecture with the ModelConfig defaults "
                       "(for --pairs; a preset brings its own)")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--learning-rate", type=float,
                       help="override the preset's (the peak, when it has a schedule)")
    train.add_argument("--vocab-size", type=int,
                       help="a new model's source and target vocabulary size (SentencePiece "
                       "pieces or kept words, special tokens included), overriding the preset's")
    train.add_argument("--precision", choices=("float32", "mixed_bfloat16", "auto"),
                       help="override the preset's: bfloat16 compute with float32 weights "
                       "(mixed_bfloat16), or that only where the CPU has bfloat16 instructions "
                       "(auto); checkpoints and exports are float32 either way")
    train.add_argument("--train-size", type=int, default=20000, help="pairs drawn for --task")
    train.add_argument("--test-size", type=int, default=1000, help="held-out pairs for --task")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--export", dest="export_path", metavar="PATH",
                       help="also export a SavedModel here when training ends")
    train.add_argument("--log-dir", help="write each epoch's loss, accuracy and learning rate "
                       "here for TensorBoard (train/ and validation/, as Keras' callback does)")
    train.add_argument("--source-vectors", help="word2vec or fastText vector file (text, binary "
                       "or .vec) whose vectors start the source embedding (see docs/word_vectors.md)")
    train.add_argument("--target-vectors", help="the same for the target embedding")
    train.add_argument("--freeze-vectors", action="store_true",
                       help="keep the pretrained embeddings fixed instead of fine-tuning them")
    train.add_argument("--from-pretrained", metavar="DIR",
                       help="fine-tune this model instead of training a new one: a Marian / "
                       "OPUS-MT model directory, or a run directory (keras-s2s import "
                       "--checkpoint-dir, keras-s2s train); its vocabularies are kept, and "
                       "training starts from the fine-tuning settings (docs/pretrained.md)")
    train.add_argument("--freeze-encoder", action="store_true",
                       help="train the decoder only")
    train.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                       help="read --pairs from disk while training, holding only samples in "
                       "memory (default: for files over 64 MiB; docs/scaling.md)")
    train.set_defaults(handler=_train)


def _train(args):
    from keras_s2s.runs import RunOptions, train_run

    train_run(RunOptions(**{field.name: getattr(args, field.name)
                            for field in dataclasses.fields(RunOptions)}))
    return 0


def _add_embeddings(commands):
    embeddings = commands.add_parser(
        "embeddings", help="learn word2vec vectors (skip-gram) from text, tokenised as a model does")
    embeddings.add_argument("--input", required=True, nargs="+",
                            help="text files (plain or .gz), one sentence a line; with --side, "
                            "TSV pair files")
    embeddings.add_argument("--side", choices=("source", "target"),
                            help="read this side of TSV pairs (--source-column, --target-column)")
    embeddings.add_argument("--source-column", type=int, default=0)
    embeddings.add_argument("--target-column", type=int, default=1)
    embeddings.add_argument("--output", required=True,
                            help="vector file to write: .vec (word2vec text) or .bin (binary)")
    embeddings.add_argument("--tokenizer", choices=("word", "char"), default="word")
    embeddings.add_argument("--vocabulary", help="a model's vocabulary file (source_vocab.txt "
                            "with its .spm beside it): tokenise into its SentencePiece pieces")
    embeddings.add_argument("--cased", action="store_true", help="keep case (models case-fold "
                            "unless their config says lowercase=false)")
    embeddings.add_argument("--normalization", default="NFKC")
    embeddings.add_argument("--dim", type=int, default=128, help="vector width (a model's "
                            "embedding_dim, or its units for a Transformer, needs no projection)")
    embeddings.add_argument("--window", type=int, default=5)
    embeddings.add_argument("--min-count", type=int, default=2)
    embeddings.add_argument("--epochs", type=int, default=5)
    embeddings.add_argument("--seed", type=int, default=0)
    embeddings.set_defaults(handler=_embeddings)


def _embeddings(args):
    from keras_s2s.word2vec import learn_from_files

    vectors = learn_from_files(args.input, args.output, side=args.side,
                               columns=(args.source_column, args.target_column),
                               tokenizer=args.tokenizer, vocabulary=args.vocabulary,
                               lowercase=not args.cased, normalization=args.normalization,
                               dim=args.dim, window=args.window, min_count=args.min_count,
                               epochs=args.epochs, seed=args.seed)
    print(f"Wrote {len(vectors):,} vectors of {vectors.vector_size} dimensions to {args.output}")
    return 0


def _add_translate(commands):
    translate = commands.add_parser("translate", help="translate with an exported SavedModel")
    translate.add_argument("--model", required=True, help="SavedModel directory")
    translate.add_argument("texts", nargs="*", help="texts to translate (default: stdin lines)")
    translate.add_argument("--json", action="store_true", help="print text and score as JSON")
    translate.set_defaults(handler=_translate)


def _translate(args):
    from keras_s2s import translator as translator_lib

    # Bytes as they come: a line that is not UTF-8 is repaired in the graph (U+FFFD) and
    # translated with the others, instead of stopping the whole run.
    texts = args.texts or [line.rstrip(b"\r\n") for line in sys.stdin.buffer]
    if not texts:
        return 0
    outputs = translator_lib.translate_in_batches(translator_lib.load(args.model), texts)
    for index, text in enumerate(outputs["text"]):
        if args.json:
            source = texts[index]
            source = (source.encode("utf-8", "surrogateescape") if isinstance(source, str)
                      else source).decode("utf-8", "replace")
            print(json.dumps({"source": source, "text": text,
                              "score": float(outputs["score"][index])}, ensure_ascii=False))
        else:
            print(text)
    return 0


def _add_evaluate(commands):
    evaluate = commands.add_parser("evaluate", help="translate a file and print BLEU/chrF as JSON")
    evaluate.add_argument("--model", required=True, help="SavedModel directory")
    evaluate.add_argument("--source", required=True, help="source sentences, one a line (.gz ok)")
    evaluate.add_argument("--reference", required=True, help="reference translations, aligned")
    evaluate.add_argument("--beam-size", type=_beam_size, help="beam search (default: the model's decoding)")
    evaluate.add_argument("--lowercase", action="store_true", help="lower-cased BLEU and chrF")
    evaluate.add_argument("--tokenize", default="13a", help="sacreBLEU tokeniser ('char' for Korean)")
    evaluate.add_argument("--hypotheses", help="write the translations to this file")
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.set_defaults(handler=_evaluate)


def _evaluate(args):
    from keras_s2s.evaluation import evaluate_files

    print(json.dumps(evaluate_files(args.model, args.source, args.reference, args.beam_size,
                                    args.lowercase, args.tokenize, args.hypotheses,
                                    args.batch_size)))
    return 0


def _add_plot(commands):
    plot = commands.add_parser("plot", help="plot the attention of one translation")
    plot.add_argument("--model", required=True, help="SavedModel directory")
    plot.add_argument("text")
    plot.add_argument("--output", help="PNG heatmap to write (default: attention.png, unless "
                      "--html is given)")
    plot.add_argument("--html", help="write the interactive view here: one self-contained "
                      "HTML file (tokens, heatmap, n-best list, a Transformer's layers and heads)")
    plot.add_argument("--beam-size", type=_beam_size)
    plot.set_defaults(handler=_plot)


def _plot(args):
    from keras_s2s import translator as translator_lib
    from keras_s2s.plotting import translate_and_plot, translate_to_html

    translator = translator_lib.load(args.model)
    written = []
    if args.html:
        translation = translate_to_html(translator, args.text, args.html, args.beam_size)
        written.append(args.html)
    if args.output or not args.html:
        output = args.output or "attention.png"
        translation = translate_and_plot(translator, args.text, output, args.beam_size)
        written.append(output)
    print(translation)
    for path in written:
        print(f"Wrote {path}")
    return 0


def _add_client(commands):
    client = commands.add_parser("client", help="translate with a model behind TensorFlow Serving")
    client.add_argument("--model", required=True, help="the model's name on the server")
    server = client.add_mutually_exclusive_group(required=True)
    server.add_argument("--url", help="REST base URL, e.g. http://localhost:8501")
    server.add_argument("--grpc", help="gRPC address, e.g. localhost:8500")
    client.add_argument("--version", type=int, help="a specific model version")
    client.add_argument("--signature", default="serving_default",
                        choices=["serving_default", "greedy", "beam", "sample"])
    client.add_argument("--beam-size", type=_beam_size, default=4, help="for --signature beam")
    client.add_argument("--temperature", type=float, default=1.0, help="for --signature sample")
    client.add_argument("--top-k", type=int, default=0, help="for --signature sample")
    client.add_argument("--top-p", type=float, default=1.0, help="for --signature sample")
    client.add_argument("--seed", type=int, default=0, help="for --signature sample")
    client.add_argument("--timeout", type=float, default=10.0)
    client.add_argument("texts", nargs="+")
    client.set_defaults(handler=_client)


def _client(args):
    from keras_s2s import serving

    scalars = {"beam": {"beam_size": args.beam_size},
               "sample": {"temperature": args.temperature, "top_k": args.top_k,
                          "top_p": args.top_p, "seed": args.seed}}.get(args.signature, {})
    if args.url:
        outputs = serving.rest_predict(args.url, args.model, args.texts, args.signature,
                                       args.version, args.timeout, **scalars)
    else:
        outputs = serving.grpc_predict(args.grpc, args.model, args.texts, args.signature,
                                       args.version, args.timeout, **scalars)
    for text in outputs["text"]:
        print(text)
    return 0


def _add_export(commands):
    export = commands.add_parser("export", help="export a trained checkpoint as a SavedModel "
                                 "(or a Transformer as a CTranslate2 model)")
    origin = export.add_mutually_exclusive_group(required=True)
    origin.add_argument("--checkpoint-dir")
    origin.add_argument("--from-saved-model", help="start from this exported SavedModel (its "
                        "variables and assets/), no checkpoint needed: re-export it with today's "
                        "graph, or convert it with --format ctranslate2")
    export.add_argument("--format", choices=("savedmodel", "ctranslate2"), default="savedmodel",
                        help="ctranslate2: a CTranslate2 model directory of a Transformer, "
                        "with its vocabularies and SentencePiece models (serving/README.md)")
    export.add_argument("--quantization", help="with --format ctranslate2: weight type "
                        "(int8, int8_float32, float16, ...; default float32)")
    destination = export.add_mutually_exclusive_group(required=True)
    destination.add_argument("--output", help="SavedModel directory to write (must not exist)")
    destination.add_argument("--name", help="write BASE_DIR/NAME/<next version>/ for serving")
    export.add_argument("--base-dir", default="saved_models")
    export.add_argument("--average-last", type=int, default=0,
                        help="export the mean weights of the last N checkpoints")
    export.add_argument("--projection-dtype", choices=("float32", "bfloat16"), default="float32",
                        help="bfloat16: faster output projection on CPUs with bfloat16 "
                             "instructions (see benchmarks/README.md)")
    export.add_argument("--jit-compile", action="store_true",
                        help="greedy decoding, and beam search with the model's beam size, "
                             "of 1-4 sentences as one XLA program: lower latency; "
                             "TensorFlow Serving then needs "
                             "--xla_cpu_compilation_enabled=true")
    export.add_argument("--shards", type=int, default=1,
                        help="decode a batch in this many shards at once, one per core; for "
                             "a server run with one thread per op "
                             "(--tensorflow_intra_op_parallelism=1)")
    export.set_defaults(handler=_export)


def _add_import(commands):
    imported = commands.add_parser(
        "import", help="a pretrained Marian / OPUS-MT translator from local files, exported "
        "as a SavedModel and/or written as a run to evaluate or fine-tune")
    imported.add_argument("--marian", required=True, metavar="DIR",
                          help="the model's directory: Marian's layout (*.npz, *.vocab.yml, "
                          "source.spm, target.spm) or its Hugging Face mirror (config.json, "
                          "model.safetensors, vocab.json, source.spm, target.spm)")
    imported.add_argument("--output", help="SavedModel directory to write (must not exist)")
    imported.add_argument("--checkpoint-dir", help="write a run directory here (config, "
                          "vocabularies, weights) for evaluate/translate/export --checkpoint-dir "
                          "and train --from-pretrained")
    imported.add_argument("--max-length", type=int, default=256,
                          help="most pieces a source is cut to and a translation may have")
    imported.add_argument("--beam-size", type=int, default=4, help="the default decoding's beam")
    imported.add_argument("--jit-compile", action="store_true",
                          help="as export --jit-compile")
    imported.set_defaults(handler=_import)


def _import(args):
    from keras_s2s.locks import refuse_non_empty
    from keras_s2s.pretrained import load_marian, save_as_run

    if not (args.output or args.checkpoint_dir):
        raise ValueError("Give --output, --checkpoint-dir or both: where the imported model goes.")
    for path, name in ((args.output, "output"), (args.checkpoint_dir, "checkpoint_dir")):
        refuse_non_empty(path, name)
    model = load_marian(args.marian, max_length=args.max_length, beam_size=args.beam_size)
    print(f"Imported {model.count_params():,} parameters from {args.marian}")
    if args.checkpoint_dir:
        print(f"Wrote {save_as_run(model, args.checkpoint_dir)}")
    if args.output:
        print(f"Exported {model.export(args.output, jit_compile=args.jit_compile)}")
    return 0


def _export(args):
    if args.name:
        from keras_s2s.translator import next_version

        with next_version(args.base_dir, args.name) as output:
            return _export_to(args, output)
    return _export_to(args, args.output)


def _export_to(args, output):
    from keras_s2s.locks import refuse_non_empty

    refuse_non_empty(output, "output")  # before a model is loaded, not after
    if args.format == "ctranslate2":
        return _export_ctranslate2(args, output)
    model = _model_to_export(args)
    exported = model.export(output, projection_dtype=args.projection_dtype,
                            jit_compile=args.jit_compile, shards=args.shards)
    print(f"Exported {exported}")
    return 0


def _model_to_export(args):
    """The model of --from-saved-model, or of --checkpoint-dir (averaged with --average-last)."""
    if args.from_saved_model:
        # An export made by an older version gets the current graph with the same weights.
        from keras_s2s.restore import load_model_from_saved_model

        return load_model_from_saved_model(args.from_saved_model)
    from keras_s2s.training import load_trained_model

    return load_trained_model(args.checkpoint_dir, args.average_last)


def _export_ctranslate2(args, output):
    from keras_s2s import ctranslate2_export
    from keras_s2s.locks import write_whole

    ctranslate2_export.import_ctranslate2()  # before the model is rebuilt, not after
    model = _model_to_export(args)
    written = write_whole(output, lambda folder: ctranslate2_export.convert_model(
        model, folder, args.quantization), "output")
    print(f"Exported {written}")
    return 0
