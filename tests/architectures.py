"""Fixtures that run a test module on both architectures.

A module that imports them,

    from .architectures import dates_export, dates_model  # noqa: F401  (both architectures)

has its `dates_model` and `dates_export` tests run on the RNN dates model and then on the
Transformer one (tests/conftest.py trains each once per session).
"""

import pytest


@pytest.fixture(scope="module")
def dates_model(architecture, rnn_dates_model, transformer_dates_model):
    return rnn_dates_model if architecture == "rnn" else transformer_dates_model


@pytest.fixture(scope="module")
def dates_export(architecture, rnn_dates_export, transformer_dates_export):
    return rnn_dates_export if architecture == "rnn" else transformer_dates_export
