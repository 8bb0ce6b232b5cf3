"""keras_s2s: sequence-to-sequence learning with attention, in Keras, from raw text to a served model."""

__version__ = "0.1.0"

from keras_s2s.attention import BahdanauAttention, LuongAttention
from keras_s2s.config import ModelConfig, TrainConfig, preset
from keras_s2s.data import make_dataset, read_tsv_pairs, split_pairs
from keras_s2s.decoder import Decoder
from keras_s2s.encoder import Encoder
from keras_s2s.metrics import exact_match
from keras_s2s.model import Seq2Seq
from keras_s2s.search import greedy_search
from keras_s2s.tasks import load_task
from keras_s2s.text import TextProcessor, Tokenizer, Vocabulary
from keras_s2s.training import load_trained_model, make_optimizer, train
from keras_s2s.translator import Translator

__all__ = [
    "BahdanauAttention", "Decoder", "Encoder", "LuongAttention", "ModelConfig", "Seq2Seq",
    "TextProcessor", "Tokenizer", "TrainConfig", "Translator", "Vocabulary", "exact_match",
    "greedy_search", "load_task", "load_trained_model", "make_dataset", "make_optimizer",
    "preset", "read_tsv_pairs", "split_pairs", "train",
]
