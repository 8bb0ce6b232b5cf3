"""Talking to a keras_s2s model behind TensorFlow Serving: REST and gRPC clients, warm-up.

The model server takes a SavedModel from `saved_models/<name>/<version>/` as it is; these
helpers build its documented requests and read its responses into one shape for both
protocols: {output name: list with one entry per input text}, strings decoded.

    rest_predict("http://localhost:8501", "multi30k-de-en", ["Ein Hund rennt."])["text"]
    grpc_predict("localhost:8500", "multi30k-de-en", ["Ein Hund rennt."], "beam", beam_size=4)

Signatures that take scalars (`beam`, `sample`) are sent in the columnar REST format
({"inputs": {...}}), since the row format needs a batch dimension on every input.
"""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np

# The scalar inputs of each exported signature and their dtypes (names of tf.DType).
SIGNATURE_SCALARS = {
    "serving_default": {},
    "greedy": {},
    "beam": {"beam_size": "int32"},
    "sample": {"temperature": "float32", "top_k": "int32", "top_p": "float32", "seed": "int64"},
}
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


class ServingError(RuntimeError):
    """The model server could not be reached, or answered with an error."""


def _check(texts, signature, scalars):
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings; got a single str.")
    if signature not in SIGNATURE_SCALARS:
        raise ValueError(f"signature must be one of {sorted(SIGNATURE_SCALARS)}; got {signature!r}.")
    expected = set(SIGNATURE_SCALARS[signature])
    if set(scalars) != expected:
        raise ValueError(f"signature {signature!r} takes scalar inputs {sorted(expected)}; "
                         f"got {sorted(scalars)}.")


def rest_url(base_url, model_name, version=None):
    """The REST predict endpoint: <base>/v1/models/<name>[/versions/<v>]:predict."""
    version_part = f"/versions/{int(version)}" if version is not None else ""
    return f"{base_url.rstrip('/')}/v1/models/{model_name}{version_part}:predict"


def rest_request_body(texts, signature="serving_default", **scalars):
    """The JSON body TensorFlow Serving's REST API documents for this signature."""
    _check(texts, signature, scalars)
    if scalars:
        return {"signature_name": signature, "inputs": {"text": list(texts), **scalars}}
    return {"signature_name": signature, "instances": [{"text": text} for text in texts]}


def rest_predict(base_url, model_name, texts, signature="serving_default", version=None,
                 timeout=10.0, **scalars):
    """Calls the REST API and returns {output: [value per text]}; raises ServingError."""
    body = json.dumps(rest_request_body(texts, signature, **scalars)).encode("utf-8")
    request = urllib.request.Request(rest_url(base_url, model_name, version), data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        raise ServingError(f"{request.full_url} answered HTTP {error.code}: "
                           f"{_error_message(error.read())}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise ServingError(f"cannot reach {request.full_url}: {reason}") from None
    return parse_rest_response(payload)


def parse_rest_response(payload):
    """Row ({"predictions": [...]}) or columnar ({"outputs": {...}}) -> {output: list}."""
    if "error" in payload:
        raise ServingError(str(payload["error"]))
    if "outputs" in payload:
        outputs = payload["outputs"]
        if isinstance(outputs, dict):
            return {key: list(value) for key, value in outputs.items()}
        return {"output": list(outputs)}
    if "predictions" in payload:
        rows = payload["predictions"]
        if rows and isinstance(rows[0], dict):
            return {key: [row[key] for row in rows] for key in rows[0]}
        return {"output": list(rows)}
    raise ServingError(f"unexpected response without predictions or outputs: {str(payload)[:200]}")


def predict_request(model_name, texts, signature="serving_default", version=None, **scalars):
    """A gRPC `PredictRequest` whose tensors are exactly what the signature accepts."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    _check(texts, signature, scalars)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    encoded = [text.encode("utf-8") for text in texts]
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(encoded, dtype=tf.string, shape=[len(encoded)]))
    for name, dtype in SIGNATURE_SCALARS[signature].items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(scalars[name], dtype=getattr(tf, dtype), shape=[]))
    return request


def parse_predict_response(response):
    """A gRPC `PredictResponse` -> {output: list}, as `parse_rest_response` returns."""
    import tensorflow as tf

    return {key: _to_python(tf.make_ndarray(proto)) for key, proto in response.outputs.items()}


def grpc_predict(address, model_name, texts, signature="serving_default", version=None,
                 timeout=10.0, **scalars):
    """Calls the gRPC PredictionService at host:port; raises ServingError."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    request = predict_request(model_name, texts, signature, version, **scalars)
    with grpc.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            raise ServingError(f"{address} ({model_name}): {error.code().name}: {error.details()}") from None
    return parse_predict_response(response)


def write_warmup_requests(saved_model_dir, texts, model_name="model"):
    """Writes assets.extra/tf_serving_warmup_requests: one PredictLog per signature, which
    the model server replays on load so the first real request does not pay for tracing."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    defaults = {"beam": {"beam_size": 4}, "sample": {"temperature": 1.0, "top_k": 0,
                                                    "top_p": 1.0, "seed": 0}}
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature in SIGNATURE_SCALARS:
            request = predict_request(model_name, texts, signature, **defaults.get(signature, {}))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


# `saved_model_cli` itself cannot load TF Text's ops, so it runs from Python after the import.
_SAVED_MODEL_CLI = ("import sys, tensorflow_text\n"
                    "from tensorflow.python.tools import saved_model_cli\n"
                    "sys.argv = ['saved_model_cli'] + sys.argv[1:]\n"
                    "saved_model_cli.main()\n")


def saved_model_cli(*arguments, check=True, timeout=300):
    """Runs TensorFlow's `saved_model_cli` with `arguments` in a fresh Python process.

    It loads a SavedModel the way TensorFlow Serving does (a session over the graph), so
    it tells whether the model server will find every variable and op of an export.

        saved_model_cli("show", "--all", "--dir", "saved_models/dates/1").stdout

    Args:
        *arguments: the tool's arguments, e.g. "show", "--dir", path, "--tag_set", "serve".
        check: raise RuntimeError (with the end of its stderr) when the tool fails.
        timeout: seconds before the process is stopped.

    Returns:
        The finished `subprocess.CompletedProcess` (returncode, stdout, stderr as text).
    """
    environment = dict(os.environ)
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up lines
    result = subprocess.run([sys.executable, "-c", _SAVED_MODEL_CLI, *map(str, arguments)],
                            capture_output=True, text=True, env=environment, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"saved_model_cli {' '.join(map(str, arguments[:1]))} failed "
                           f"(exit {result.returncode}): {result.stderr[-2000:]}")
    return result


def saved_model_cli_run(saved_model_dir, signature, texts, check=True, timeout=300, **scalars):
    """`saved_model_cli run` of one signature on `texts` (a string or a list of strings).

        saved_model_cli_run("saved_models/dates/1", "beam", ["March 3, 2021"], beam_size=4)

    Args:
        saved_model_dir: the exported SavedModel.
        signature: serving_default, greedy, beam or sample.
        texts: the source texts.
        check, timeout: as for `saved_model_cli`.
        **scalars: the signature's scalar inputs (beam_size; temperature, top_k, top_p, seed).

    Returns:
        The finished process; its stdout holds "Result for output key NAME:" and the value.
    """
    texts = [texts] if isinstance(texts, str) else list(texts)
    _check(texts, signature, scalars)
    expressions = [f"text={texts!r}"] + [f"{name}={value!r}" for name, value in scalars.items()]
    return saved_model_cli("run", "--dir", saved_model_dir, "--tag_set", "serve",
                           "--signature_def", signature, "--input_exprs", ";".join(expressions),
                           check=check, timeout=timeout)

def _to_python(array):
    """numpy array -> nested lists with bytes decoded to str, batch first."""
    if array.dtype == object:
        return np.vectorize(lambda value: value.decode("utf-8", "replace"), otypes=[object])(array).tolist()
    return array.tolist()


def _error_message(body):
    try:
        return json.loads(body.decode("utf-8")).get("error", body.decode("utf-8", "replace"))
    except (ValueError, AttributeError):
        return body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
