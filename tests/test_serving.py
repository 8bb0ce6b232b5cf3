"""Clients for TensorFlow Serving, checked against real signatures of an exported model."""

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s import serving
from keras_s2s import translator as translator_lib

from tests.rest_stand_in import RestStandIn

TEXTS = ["March 3, 2021", "3rd of March 2021", ""]


@pytest.mark.slow  # over 15 s on 2 cores: CI runs it with the long tests
def test_grpc_request_holds_exactly_the_tensors_the_signature_accepts(any_dates_export):
    loaded = translator_lib.load(any_dates_export)
    for signature, scalars in (("serving_default", {}), ("beam", {"beam_size": 3}),
                               ("sample", {"temperature": 0.5, "top_k": 5, "top_p": 0.9, "seed": 7})):
        request = serving.predict_request("dates", TEXTS, signature, version=1, **scalars)
        assert request.model_spec.signature_name == signature and request.model_spec.version.value == 1
        specs = loaded.signatures[signature].structured_input_signature[1]
        tensors = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        assert set(tensors) == set(specs)
        for name, spec in specs.items():
            assert tf.as_dtype(request.inputs[name].dtype) == spec.dtype, name
            assert spec.shape.is_compatible_with(tensors[name].shape), name
        # The converted tensors run through the real signature.
        outputs = loaded.signatures[signature](**{name: tf.constant(value, specs[name].dtype)
                                                  for name, value in sorted(tensors.items())})
        assert outputs["text"].shape == (len(TEXTS),)


def test_response_parser_reads_a_response_built_from_a_real_call(any_dates_model, any_dates_export):
    from tensorflow_serving.apis import predict_pb2

    loaded = translator_lib.load(any_dates_export)
    outputs = loaded.signatures["beam"](text=tf.constant(TEXTS), beam_size=tf.constant(2))
    response = predict_pb2.PredictResponse()
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
    parsed = serving.parse_predict_response(response)
    assert parsed["text"] == [text.decode() for text in outputs["text"].numpy()]
    assert np.array(parsed["nbest"]).shape == (len(TEXTS), 2)
    np.testing.assert_allclose(parsed["score"], outputs["score"].numpy())


def test_rest_client_against_a_stand_in_that_runs_the_saved_model(any_dates_model, any_dates_export):
    loaded = translator_lib.load(any_dates_export)
    expected = any_dates_model[0].translate(TEXTS)
    with RestStandIn({"dates": {1: loaded}}) as server:
        assert serving.rest_predict(server.url, "dates", TEXTS)["text"] == expected
        assert serving.rest_predict(server.url, "dates", TEXTS, version=1)["text"] == expected
        beam = serving.rest_predict(server.url, "dates", TEXTS, "beam", beam_size=3)
        assert np.array(beam["nbest"]).shape == (3, 3) and beam["text"] == [row[0] for row in beam["nbest"]]
        sample = serving.rest_predict(server.url, "dates", TEXTS, "sample", temperature=0.0,
                                      top_k=0, top_p=1.0, seed=1)
        assert sample["text"] == expected
        with pytest.raises(serving.ServingError, match="HTTP 404.*not found"):
            serving.rest_predict(server.url, "other", TEXTS)
        with pytest.raises(serving.ServingError, match="HTTP 404"):
            serving.rest_predict(server.url, "dates", TEXTS, version=9)
        url = server.url
    with pytest.raises(serving.ServingError, match="cannot reach"):
        serving.rest_predict(url, "dates", TEXTS, timeout=2)


def test_grpc_client_reports_a_server_that_is_down():
    with pytest.raises(serving.ServingError, match="UNAVAILABLE|DEADLINE"):
        serving.grpc_predict("127.0.0.1:9", "dates", TEXTS, timeout=2)


def test_request_building_refuses_wrong_inputs():
    with pytest.raises(ValueError, match="beam_size"):
        serving.rest_request_body(TEXTS, "beam")
    with pytest.raises(ValueError, match="signature"):
        serving.rest_request_body(TEXTS, "topk")
    with pytest.raises(ValueError, match="list of strings"):
        serving.predict_request("dates", "March 3")
    assert serving.rest_url("http://h:8501/", "m", 3) == "http://h:8501/v1/models/m/versions/3:predict"


@pytest.mark.slow  # over 15 s on 2 cores: CI runs it with the long tests
def test_warmup_file_replays_against_the_model(any_dates_export, tmp_path):
    import shutil

    from tensorflow_serving.apis import prediction_log_pb2

    copy = tmp_path / "dates" / "1"
    shutil.copytree(any_dates_export, copy)
    path = serving.write_warmup_requests(str(copy), ["March 3, 2021"], "dates")
    loaded = translator_lib.load(str(copy))
    records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
    assert len(records) == len(serving.SIGNATURE_SCALARS)
    for record in records:
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        function = loaded.signatures[request.model_spec.signature_name]
        specs = function.structured_input_signature[1]
        outputs = function(**{name: tf.constant(tf.make_ndarray(request.inputs[name]), specs[name].dtype)
                              for name in specs})
        assert outputs["text"].shape == (1,)


def test_export_writes_warmup_requests_for_every_signature(any_dates_export):
    import os

    path = os.path.join(any_dates_export, serving.WARMUP_FILE)
    assert os.path.exists(path)
    assert sum(1 for _ in tf.data.TFRecordDataset(path)) == len(serving.SIGNATURE_SCALARS)


def test_models_config_lists_exactly_the_shipped_models():
    import glob
    import os

    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    root = os.path.join(os.path.dirname(__file__), "..")
    with open(os.path.join(root, "serving", "models.config"), encoding="utf-8") as file:
        config = text_format.Parse(file.read(), model_server_config_pb2.ModelServerConfig())
    listed = {entry.name: entry.base_path for entry in config.model_config_list.config}
    shipped = {os.path.basename(os.path.dirname(os.path.dirname(path)))
               for path in glob.glob(os.path.join(root, "saved_models", "*", "*", "saved_model.pb"))}
    assert set(listed) == shipped
    assert all(base_path == f"/models/{name}" for name, base_path in listed.items())
    assert all(entry.model_platform == "tensorflow" for entry in config.model_config_list.config)


@pytest.mark.subprocess
def test_client_command_talks_rest_and_reports_a_down_server(any_dates_model, any_dates_export):
    import subprocess
    import sys

    loaded = translator_lib.load(any_dates_export)
    with RestStandIn({"dates": {1: loaded}}) as server:
        result = subprocess.run([sys.executable, "-m", "keras_s2s", "client", "--url", server.url,
                                 "--model", "dates", "--signature", "beam", "--beam-size", "2",
                                 "March 3, 2021"], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip() == any_dates_model[0].translate(["March 3, 2021"])[0]
        url = server.url
    down = subprocess.run([sys.executable, "-m", "keras_s2s", "client", "--url", url, "--model",
                           "dates", "--timeout", "2", "hello"], capture_output=True, text=True,
                          timeout=300)
    assert down.returncode == 3 and "cannot reach" in down.stderr and "Traceback" not in down.stderr


@pytest.mark.slow  # over 15 s on 2 cores: CI runs it with the long tests
def test_saved_model_cli_run_takes_a_signatures_scalar_inputs(any_dates_model, any_dates_export):
    # The session-based loader of TensorFlow Serving, on the signature with a scalar input.
    result = serving.saved_model_cli_run(any_dates_export, "beam", ["March 3, 2021"], beam_size=3)
    expected = any_dates_model[0].translator().beam(tf.constant(["March 3, 2021"]), tf.constant(3))
    assert f"[b'{expected['text'].numpy()[0].decode()}']" in result.stdout
    with pytest.raises(ValueError, match="beam_size"):
        serving.saved_model_cli_run(any_dates_export, "beam", ["March 3, 2021"])
    with pytest.raises(RuntimeError, match="saved_model_cli run failed"):
        serving.saved_model_cli_run(any_dates_export + "-missing", "greedy", "March 3, 2021")
