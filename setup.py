from setuptools import find_packages, setup

setup(
    name="keras_s2s",
    version="0.1.0",
    description="Sequence-to-sequence learning with attention in Keras: train, decode, export, serve.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_s2s", "keras_s2s.*"]),
    # The attention view's style and script, which keras_s2s/attention_view.py inlines.
    package_data={"keras_s2s": ["attention_view.css", "attention_view.js"]},
    license="Apache-2.0",
    classifiers=["License :: OSI Approved :: Apache Software License"],
    python_requires=">=3.10",
    # tensorflow-text 2.21 requires the full tensorflow wheel, so that is what is pinned.
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tensorflow-text>=2.21,<2.22",
        "keras>=3.10,<4",
        "numpy",
        "matplotlib>=3.7",
        "sacrebleu>=2.3",
        "sentencepiece>=0.2",
        # Protos for TensorFlow Serving requests: the client and the export's warm-up file.
        "tensorflow-serving-api>=2.21,<2.22",
        # The TensorFlow 2.21 wheel no longer brings TensorBoard; keras.callbacks.TensorBoard
        # and train(log_dir=...) write logs with it.
        "tensorboard>=2.21,<2.22",
        # keras-s2s import reads pretrained Marian models: their options and vocabularies are
        # YAML, and their Hugging Face mirrors hold the weights as safetensors (read with
        # NumPy, no PyTorch).
        "pyyaml>=6",
        "safetensors>=0.4",
    ],
    extras_require={
        # tests/test_notebooks.py executes the tutorials with nbclient in an ipykernel; CI
        # lints with ruff (ruff.toml) before it tests; tests/headless_browser.py drives
        # Chromium over the DevTools protocol's websocket.
        # pytest-xdist runs the tests in two processes (pytest -n 2), one per core.
        "test": ["pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6.100", "nbclient>=0.10",
                 "nbformat>=5.9", "ipykernel>=6.29", "ruff>=0.4", "websocket-client>=1.6",
                 # tests/test_word_vectors.py reads and learns vectors with gensim.
                 "gensim>=4.4,<5",
                 # tests/test_ctranslate2_export.py converts a trained model and runs it.
                 "ctranslate2>=4.8,<5"],
        # Notebook 10 learns word vectors with gensim; notebook 11 checks an imported Marian
        # model against CTranslate2's own converter.
        "notebooks": ["jupyter", "nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6.29",
                      "gensim>=4.4,<5", "ctranslate2>=4.8,<5"],
        # Pretrained word vectors (keras_s2s/word_vectors.py reads them, word2vec.py learns
        # them); 4.4 is the first gensim built for NumPy 2, which TensorFlow 2.21 needs.
        "embeddings": ["gensim>=4.4,<5"],
        # keras-s2s export --format ctranslate2 (keras_s2s/ctranslate2_export.py).
        "ctranslate2": ["ctranslate2>=4.8,<5"],
    },
    entry_points={"console_scripts": ["keras-s2s=keras_s2s.cli:main"]},
)
